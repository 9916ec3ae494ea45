"""The platform's own version, as installed (``pyproject.toml``'s ``[project] version``)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "local-ai-suite"


def package_version() -> str:
    """The installed ``local-ai-suite`` version; ``0+unknown`` when run from an uninstalled tree."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "0+unknown"
