__all__ = ["ServiceUnavailable", "Stack"]

from pytest_plugins.stack.backend import ServiceUnavailable
from pytest_plugins.stack.handle import Stack
