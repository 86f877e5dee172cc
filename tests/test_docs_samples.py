"""Every code sample of every page in ``docs/`` is run here -- the docs cannot drift.

How each fenced block is checked, by its language:

``python``
    Executed in a fresh interpreter. Trailing ``# output`` comment lines are what it
    prints: each must be among the printed lines. A bare ``.run()`` call (which loops
    until a signal) is executed as ``.run(burst=True)``. A sample whose first line is a
    comment naming a test module (``# tests/test_my_store.py``) is that module: it is
    written there, in a temporary directory, and run with pytest, which must pass.
``console``
    Each ``$ command`` line is run (``schedcore`` and ``rq`` as ``python -m ...`` of this
    interpreter, from the repository root). The lines under it, if any, are its stdout,
    exactly -- or its stderr when they start with ``error:``, with a non-zero exit code. A
    line ``...`` matches any number of lines.
``sh``
    Each command is run the same way (``\\`` continues a line, ``#`` starts a comment).
    ``schedcore run`` and ``rq worker`` without ``--burst`` are long-running: each must
    still be up after a few seconds and stop cleanly (exit code 0) on SIGTERM.
``toml``
    Parsed; a schedule file (``[[schedule]]``) goes through ``schedcore.config``'s parser.
    A ``[project.entry-points.schedcore]`` excerpt must be what the example plugin's
    ``pyproject.toml`` declares, when it names the example plugin.
no language, ``text``
    Diagrams and command synopses: not code, not run.

Markers, an HTML comment on the line right above the fence:

``<!-- needs: redis -->``
    The sample runs against a private ``redis-server`` started by the test (see
    :mod:`schedcore.testing.redis_server`): ``redis://localhost:6379/0`` in the sample is
    replaced by that server's URL, and a ``redis-server`` command is satisfied by it.
``<!-- needs: example-plugin -->``, ``<!-- needs: example-business-days -->``
    The sample uses the example plugin (``examples/schedcore-prometheus``, or
    ``examples/schedcore-business-days``): skipped when it is not installed, an error when
    ``SCHEDCORE_REQUIRE_EXAMPLES=1`` (CI).
``<!-- not-run: reason -->``
    Not run, for the reason given; reviewed, and kept rare (see
    ``test_not_run_markers_are_few_and_explained``).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))

LANGUAGES_RUN = {"python", "console", "sh", "toml"}
LANGUAGES_INERT = {"", "text"}
LOCAL_REDIS = "redis://localhost:6379/0"
LONG_RUNNING_UP = 3.0  # seconds a long-running command must stay up
MAX_NOT_RUN = 4

_FENCE = re.compile(
    r"^(?P<marker><!--\s*(?P<kind>needs|not-run):\s*(?P<arg>.*?)\s*-->\n)?```(?P<lang>[\w-]*)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


@attrs.frozen
class Sample:
    page: str
    line: int
    lang: str
    body: str
    needs: str | None = None
    not_run: str | None = None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}:{self.lang or 'plain'}"


def samples(pages: list[Path] = PAGES) -> list[Sample]:
    found = []
    for path in pages:
        text = path.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            kind, arg = match.group("kind"), match.group("arg")
            fence_at = match.start() + len(match.group("marker") or "")
            found.append(
                Sample(
                    page=path.name,
                    line=text.count("\n", 0, fence_at) + 1,
                    lang=match.group("lang"),
                    body=match.group("body"),
                    needs=arg if kind == "needs" else None,
                    not_run=arg if kind == "not-run" else None,
                )
            )
    return found


def of(*langs: str) -> list[Sample]:
    return [s for s in samples() if s.lang in langs]


def ids(sample: Sample) -> str:
    return sample.id


# -- the environment samples run in ---------------------------------------------------------


@pytest.fixture
def env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Environment of the sample's processes; with a private redis-server when it needs one."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDCORE_") or k.startswith("SCHEDCORE_REQ")}
    # The example plugin, when installed, serves metrics from every scheduler: keep it local.
    environ.update(SCHEDCORE_PROMETHEUS_PORT="0", SCHEDCORE_PROMETHEUS_ADDR="127.0.0.1")
    sample: Sample = request.node.callspec.params["sample"]
    if sample.needs is None:
        yield environ
        return
    examples = {"example-plugin": "schedcore-prometheus", "example-business-days": "schedcore-business-days"}
    if sample.needs in examples:
        try:
            importlib.metadata.distribution(examples[sample.needs])
        except importlib.metadata.PackageNotFoundError:
            if os.environ.get("SCHEDCORE_REQUIRE_EXAMPLES") == "1":
                raise
            pytest.skip(f"the example plugin is not installed: pip install -e examples/{examples[sample.needs]}")
        yield environ
        return
    assert sample.needs == "redis", f"{sample.id}: unknown need {sample.needs!r}"
    from schedcore.testing.redis_server import redis_server

    with redis_server() as server:
        environ["DOCS_REDIS_URL"] = server.url
        yield environ


def localize(text: str, environ: dict[str, str]) -> str:
    """``text`` with the docs' Redis URL pointing at the private server; never at a real one."""
    url = environ.get("DOCS_REDIS_URL")
    text = text.replace(LOCAL_REDIS, url) if url else text
    assert not re.search(r"rediss?://", text), f"a sample that talks to Redis needs <!-- needs: redis -->: {text!r}"
    return text


def command_words(line: str, environ: dict[str, str]) -> list[str]:
    words = shlex.split(localize(line, environ), comments=True)
    if words[:1] == ["schedcore"]:
        return [sys.executable, "-m", "schedcore.cli", *words[1:]]
    if words[:1] == ["rq"]:
        return [sys.executable, "-m", "rq.cli", *words[1:]]
    if words[:1] in (["python"], ["python3"]) and words[1:3] != ["-m", "pip"]:
        return [sys.executable, *words[1:]]
    raise AssertionError(f"the docs test does not know how to run {line!r}: mark the block <!-- not-run: reason -->")


# -- python -------------------------------------------------------------------------------


def _trailing_comments(code: str) -> list[str]:
    shown: list[str] = []
    for line in reversed(code.rstrip().splitlines()):
        if not line.startswith("# "):
            break
        shown.insert(0, line[2:])
    return shown


@pytest.mark.parametrize("sample", of("python"), ids=ids)
def test_python_sample_runs(sample: Sample, env: dict[str, str], tmp_path: Path) -> None:
    if sample.not_run:
        pytest.skip(f"not run: {sample.not_run}")
    code = localize(sample.body, env)
    code = re.sub(r"\.run\(\)$", ".run(burst=True)", code, flags=re.MULTILINE)
    module = re.match(r"# (tests/test_\w+\.py)\n", code)
    if module:
        (tmp_path / module.group(1)).parent.mkdir()
        (tmp_path / module.group(1)).write_text(code, encoding="utf-8")
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", module.group(1)]
    else:
        command = [sys.executable, "-c", code]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path, env=env)
    assert proc.returncode == 0, f"{sample.id}:\n{code}\n{proc.stdout}\n{proc.stderr}"
    printed = iter(proc.stdout.splitlines())  # the shown lines, in order, among the printed ones
    for line in _trailing_comments(sample.body):
        assert line in printed, (
            f"{sample.id}: the sample says it prints {line!r} (in this order); it printed\n{proc.stdout}"
        )


# -- console --------------------------------------------------------------------------------


def _matches(shown: list[str], actual: list[str]) -> bool:
    """``shown`` equals ``actual``, a ``...`` line of ``shown`` matching any lines."""
    if not shown:
        return not actual
    if shown[0] == "...":
        return any(_matches(shown[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and shown[0] == actual[0] and _matches(shown[1:], actual[1:])


def console_commands(body: str) -> list[tuple[str, list[str]]]:
    """Each ``$ command`` of a console block with the output lines shown under it."""
    commands: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        else:
            assert commands, f"console block starts with output, not a command: {line!r}"
            commands[-1][1].append(line)
    return commands


@pytest.mark.parametrize("sample", of("console"), ids=ids)
def test_console_sample_prints_what_it_shows(sample: Sample, env: dict[str, str]) -> None:
    if sample.not_run:
        pytest.skip(f"not run: {sample.not_run}")
    for command, shown in console_commands(sample.body):
        proc = subprocess.run(
            command_words(command, env), capture_output=True, text=True, timeout=120, check=False, cwd=ROOT, env=env
        )
        shown = [localize(line, env) for line in shown]
        if shown and shown[0].startswith("error: "):
            assert proc.returncode != 0, f"{sample.id}: {command!r} succeeded; the docs show an error"
            assert _matches(shown, proc.stderr.splitlines()), f"{sample.id}: {command!r}\n{proc.stderr}"
        else:
            assert proc.returncode == 0, f"{sample.id}: {command!r} failed:\n{proc.stderr}"
            assert _matches(shown, proc.stdout.splitlines()), f"{sample.id}: {command!r} printed\n{proc.stdout}"


# -- sh -------------------------------------------------------------------------------------


def sh_commands(body: str) -> list[str]:
    joined = body.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def _long_running(words: list[str]) -> bool:
    tail = words[3:] if words[1] == "-m" else words[1:]
    return "--burst" not in tail and (tail[:1] == ["run"] or tail[:1] == ["worker"])


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


@pytest.mark.parametrize("sample", of("sh"), ids=ids)
def test_sh_sample_runs(sample: Sample, env: dict[str, str]) -> None:
    if sample.not_run:
        pytest.skip(f"not run: {sample.not_run}")
    started: list[tuple[str, subprocess.Popen[str]]] = []
    try:
        for command in sh_commands(sample.body):
            if command.split()[0] == "redis-server":
                assert sample.needs == "redis", f"{sample.id}: starts redis-server; mark it <!-- needs: redis -->"
                continue  # the private server of the test plays it
            words = command_words(command, env)
            if _long_running(words):
                proc = subprocess.Popen(
                    words, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env
                )
                started.append((command, proc))
                continue
            done = subprocess.run(words, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT, env=env)
            assert done.returncode == 0, f"{sample.id}: {command!r} failed:\n{done.stderr}"
        time.sleep(LONG_RUNNING_UP if started else 0)
        for command, proc in started:
            assert proc.poll() is None, f"{sample.id}: {command!r} exited early:\n{_stop(proc)[1]}"
    finally:
        results = [(command, proc, _stop(proc)) for command, proc in reversed(started)]
    for command, proc, (_, err) in results:
        assert proc.returncode == 0, f"{sample.id}: {command!r} did not stop cleanly ({proc.returncode}):\n{err}"


# -- toml -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", of("toml"), ids=ids)
def test_toml_sample_is_valid(sample: Sample) -> None:
    if sample.not_run:
        pytest.skip(f"not run: {sample.not_run}")
    data = tomllib.loads(sample.body)
    if "schedule" in data:
        from schedcore.config import parse_schedules

        assert parse_schedules(sample.body, source=sample.id)
    declared = data.get("project", {}).get("entry-points", {}).get("schedcore", {})
    if any(value.startswith("schedcore_prometheus") for value in declared.values()):
        example = tomllib.loads((ROOT / "examples" / "schedcore-prometheus" / "pyproject.toml").read_text("utf-8"))
        assert declared == example["project"]["entry-points"]["schedcore"]


# -- the rules themselves ---------------------------------------------------------------------


def test_every_block_has_a_known_language() -> None:
    for sample in samples():
        assert sample.lang in LANGUAGES_RUN | LANGUAGES_INERT, f"{sample.id}: no rule for ```{sample.lang}"


def test_plain_blocks_are_not_python() -> None:
    """A Python sample without its language tag would silently escape the test."""
    for sample in samples():
        if sample.lang in LANGUAGES_INERT:
            assert not re.search(r"^(from \w|import \w|\$ )", sample.body, re.MULTILINE), f"{sample.id}: tag it"


def test_not_run_markers_are_few_and_explained() -> None:
    skipped = [s for s in samples() if s.not_run is not None]
    assert len(skipped) <= MAX_NOT_RUN, [s.id for s in skipped]
    for sample in skipped:
        assert len(sample.not_run or "") >= 15, f"{sample.id}: say why it is not run"


def test_the_docs_have_samples_of_each_kind() -> None:
    found = {s.lang for s in samples() if s.not_run is None}
    assert {"python", "console", "toml"} <= found
    assert len(of("python")) >= 8


def test_markers_are_attached_to_a_fence() -> None:
    for path in PAGES:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"<!--\s*(needs|not-run):.*?-->\n(.*)\n", text):
            assert match.group(2).startswith("```"), f"{path.name}: marker not right above a fence"


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_local_links_resolve(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
        assert (path.parent / target).exists(), f"{path.name} links to missing {target}"


def test_the_plugin_guide_documents_every_hook() -> None:
    """A hook added to schedcore/hookspecs.py needs its row in the plugin guide's tables."""
    from schedcore import hookspecs

    guide = (DOCS / "plugins.md").read_text(encoding="utf-8")
    # Hook rows say when the hook is called: "| `schedcore_x` | when ..." or "| ... | `Scheduler.add` ...".
    rows = set(re.findall(r"^\| `(schedcore_[a-z_]+)` \| (?!counter|gauge|histogram)", guide, re.MULTILINE))
    declared = {name for name in vars(hookspecs) if name.startswith("schedcore_")}
    assert declared == rows


def test_the_matcher() -> None:
    assert _matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert _matches(["..."], [])
    assert not _matches(["a"], ["a", "b"])
    assert not _matches(["a", "...", "x"], ["a", "b"])
