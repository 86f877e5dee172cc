"""The distribution's name on the package index, and install hints built from it.

The import packages are ``schedcore``, ``schedcore_redis`` and ``schedcore_rq``; the
distribution that ships them is ``schedcore-engine``, because the name ``schedcore`` on
the public index belongs to an unrelated project. Every install hint and version lookup
reads the name from here so that an error message never sends a user to the wrong package.
"""

from __future__ import annotations

__all__ = ["DISTRIBUTION", "install_hint", "version"]

DISTRIBUTION = "schedcore-engine"


def install_hint(extra: str | None = None) -> str:
    """The pip command that installs schedcore, with ``extra`` (``"redis"``, ``"rq"``, ...) when given."""
    return f"pip install '{DISTRIBUTION}[{extra}]'" if extra else f"pip install {DISTRIBUTION}"


def version() -> str:
    """The installed distribution's version, or ``"unknown"`` when running from a bare checkout."""
    import importlib.metadata

    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"
