__all__ = ["ServiceUnavailable", "Stack"]

from ai_suite_pytest.stack.backend import ServiceUnavailable
from ai_suite_pytest.stack.handle import Stack
