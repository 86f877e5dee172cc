"""Packaging: a light import, typing markers, console script and entry points as declared."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _modules_after(code: str) -> set[str]:
    """The modules loaded by ``code`` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    return set(json.loads(out.splitlines()[-1]))


def _top_level(modules: set[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


def test_import_schedcore_imports_neither_redis_nor_rq() -> None:
    loaded = _top_level(_modules_after("import schedcore"))
    assert "schedcore" in loaded
    assert not loaded & {"redis", "rq", "fakeredis", "schedcore_redis", "schedcore_rq"}


@pytest.mark.parametrize("module", ["schedcore.cli", "schedcore.config", "schedcore.plugins", "schedcore.testing"])
def test_core_modules_stay_free_of_optional_drivers(module: str) -> None:
    loaded = _top_level(_modules_after(f"import {module}"))
    assert not loaded & {"redis", "rq", "fakeredis"}


def test_import_schedcore_does_not_load_test_tools() -> None:
    loaded = _top_level(_modules_after("import schedcore"))
    assert not loaded & {"pytest", "hypothesis", "click"}


_WITHOUT_DRIVERS = (
    "import sys\n"
    "for name in ('redis', 'rq', 'fakeredis'):\n"
    "    sys.modules[name] = None  # as if not installed: importing them raises ImportError\n"
)


def test_the_embedded_default_runs_without_redis_or_rq_installed(tmp_path: Path) -> None:
    """``pip install schedcore-engine`` (no extras) is enough for ``schedcore run`` on the default."""
    config = tmp_path / "one.toml"
    config.write_text('[[schedule]]\nid = "a"\ntask = "schedcore.demo:hello"\nevery = 60\n', encoding="utf-8")
    code = _WITHOUT_DRIVERS + f"from schedcore.cli import main\nmain(['run', '--config', {str(config)!r}, '--burst'])\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "error:" not in proc.stderr


def test_the_plugins_of_this_distribution_load_without_their_drivers() -> None:
    """The redis and rq plugins ship in the core distribution, so their entry points are
    always registered: loading them must not import redis or rq (only building a store or
    executor may), or every plugin lookup fails on an install without the extras."""
    code = _WITHOUT_DRIVERS + (
        "from schedcore.plugins import Hooks, get_plugin_manager\n"
        "hooks = Hooks(get_plugin_manager())\n"
        "print(sorted(hooks.store_factories()), sorted(hooks.executor_factories()))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "'memory'" in proc.stdout and "'local'" in proc.stdout


def _plugins_listing(blocked: tuple[str, ...]) -> str:
    code = (
        f"import sys\nfor name in {blocked!r}:\n    sys.modules[name] = None\n"
        "from schedcore.cli import main\nmain(['plugins'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _entry(listing: str, name: str) -> list[str]:
    """The line of store/executor ``name`` in ``schedcore plugins``, with its indented continuation."""
    lines = listing.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {name} ") and "schedcore_" not in line)
    return [lines[start], *[line.strip() for line in lines[start + 1 : start + 2] if line.startswith(" " * 15)]]


def test_plugins_says_which_drivers_are_not_installed_and_how_to_install_them() -> None:
    listing = _plugins_listing(("redis", "rq", "fakeredis"))
    assert _entry(listing, "redis")[1:] == ["not installed: needs redis (pip install 'schedcore-engine[redis]')"]
    assert _entry(listing, "rq")[1:] == ["not installed: needs redis, rq (pip install 'schedcore-engine[rq]')"]
    assert len(_entry(listing, "memory")) == len(_entry(listing, "local")) == 1  # the built-ins need nothing
    only_rq = _plugins_listing(("rq",))
    assert len(_entry(only_rq, "redis")) == 1
    assert _entry(only_rq, "rq")[1:] == ["not installed: needs rq (pip install 'schedcore-engine[rq]')"]


def test_plugins_says_nothing_is_missing_when_the_drivers_are_installed() -> None:
    pytest.importorskip("redis")
    pytest.importorskip("rq")
    assert "not installed" not in _plugins_listing(())


@pytest.mark.parametrize("package", ["schedcore", "schedcore_redis", "schedcore_rq"])
def test_py_typed_ships(package: str) -> None:
    assert files(package).joinpath("py.typed").is_file()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"][package]


@pytest.mark.slow
def test_the_build_ships_the_typing_markers(tmp_path: Path) -> None:
    """Run setuptools' ``build_py`` on a copy of the sources: what a wheel would contain."""
    pytest.importorskip("setuptools")
    import shutil

    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source / "pyproject.toml")
    (source / "README.md").write_text("readme\n", encoding="utf-8")
    for package in ("schedcore", "schedcore_redis", "schedcore_rq"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "lib"
    build = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", "import setuptools; setuptools.setup()", "-q", "build_py",
         "--build-lib", str(out)],
        cwd=source, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    built = {path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()}
    assert {"schedcore/py.typed", "schedcore_redis/py.typed", "schedcore_rq/py.typed"} <= built
    assert {"schedcore/cli.py", "schedcore/__init__.py"} <= built
    assert not any(name.startswith("tests/") for name in built)


def test_console_script_and_entry_points() -> None:
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("schedcore") == "schedcore.cli:main"
    plugins = {ep.name: ep.value for ep in entry_points(group="schedcore")}
    assert plugins.get("memory") == "schedcore._builtin"


def test_core_dependencies_are_only_the_declared_few() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    names = {
        dep.split(";")[0].split(">")[0].split("=")[0].split("<")[0].strip()
        for dep in pyproject["project"]["dependencies"]
    }
    assert names <= {"attrs", "croniter", "pluggy", "click", "tomli", "tzdata"}
    extras = pyproject["project"]["optional-dependencies"]
    assert {"redis", "rq", "test"} <= set(extras)


def test_python_m_schedcore_cli_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "schedcore.cli", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0
    assert "Usage: schedcore" in proc.stdout


def test_the_distribution_name_is_ours_everywhere() -> None:
    """``schedcore`` on the package index is someone else's project: no install line may send users there."""
    import re

    from schedcore._dist import DISTRIBUTION, install_hint, version

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["name"] == DISTRIBUTION == "schedcore-engine"
    example = tomllib.loads((ROOT / "examples/schedcore-prometheus/pyproject.toml").read_text(encoding="utf-8"))
    assert DISTRIBUTION in example["project"]["dependencies"]
    assert version() == pyproject["project"]["version"]
    assert install_hint("rq") == "pip install 'schedcore-engine[rq]'"
    wrong = re.compile(r"pip install\s+['\"]?schedcore(?![-\w])")
    texts = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "examples").rglob("*.md")]
    texts += [
        path for package in ("schedcore", "schedcore_redis", "schedcore_rq") for path in (ROOT / package).rglob("*.py")
    ]
    offenders = [str(path.relative_to(ROOT)) for path in texts if wrong.search(path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_cli_version_reads_the_distribution() -> None:
    from click.testing import CliRunner

    from schedcore.cli import cli

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0, result.output
    assert "schedcore, version 0.1.0" in result.output
