"""Safe YAML parsing for configuration files, with libyaml's parser when PyYAML has it.

PyYAML's pure-Python parser is about ten times slower than libyaml's; both loaders
below are *safe* loaders (plain data only, never arbitrary Python objects). PyYAML's
wheels ship libyaml; a build without it falls back to the pure-Python loader.
"""

from __future__ import annotations

from typing import Any

import yaml

try:
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader  # type: ignore[assignment]

__all__ = ["SafeLoader", "safe_load"]


def safe_load(text: str) -> Any:
    """``text`` parsed as YAML (plain data only); raises ``yaml.YAMLError`` if it is not."""
    return yaml.load(text, Loader=SafeLoader)
