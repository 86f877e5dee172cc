"""What the project ships is used: every exception is raised somewhere, every package-data
pattern matches a file."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import tomllib

import schedcore.exceptions

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("schedcore", "schedcore_redis", "schedcore_rq", "schedcore_web")


def _source() -> str:
    return "\n".join(p.read_text() for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_every_exception_is_raised_or_subclassed_somewhere() -> None:
    source = _source()
    classes = [
        cls
        for cls in vars(schedcore.exceptions).values()
        if inspect.isclass(cls) and issubclass(cls, Exception) and cls.__module__ == "schedcore.exceptions"
    ]
    assert len(classes) > 5
    for cls in classes:
        name = cls.__name__
        raised = re.search(rf"\b(raise|return)\s+{name}\(|\b{name}\(", source.replace(f"class {name}(", ""))
        subclassed = re.search(rf"class \w+\([^)]*\b{name}\b", source)
        assert raised or subclassed, f"{name} is never raised: remove it"


def test_every_package_data_pattern_matches_a_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for package, patterns in config["tool"]["setuptools"]["package-data"].items():
        for pattern in patterns:
            assert list((ROOT / package).glob(pattern)), f"package-data {package}: {pattern!r} matches no file"
