__all__ = ["Stack"]

from pytest_plugins.stack.handle import Stack
