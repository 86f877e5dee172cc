"""The traceback a failed run keeps: trimming (schedcore.tracebacks), the record fields that
carry it, the local executor that reports it, and reading it back from any stored shape."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schedcore.exceptions import ValidationError
from schedcore.executors import LocalExecutor
from schedcore.records import Outcome, OutcomeStatus, RunRecord
from schedcore.testing.executor_suite import make_run
from schedcore.testing.factories import T0, dispatched_record, fire_entry, outcome_for
from schedcore.tracebacks import MAX_CHARS, MAX_LINES, format_traceback, trim_traceback

HEADER = "Traceback (most recent call last):"


def raise_from_depth(depth: int) -> None:
    if depth:
        raise_from_depth(depth - 1)
    raise KeyError("innermost")


def ping(depth: int) -> None:
    # Alternating with pong: Python folds runs of one repeated frame, not these.
    if depth:
        pong(depth - 1)
    raise_from_depth(0)


def pong(depth: int) -> None:
    if depth:
        ping(depth - 1)
    raise_from_depth(0)


def caught(fn: Any, *args: Any) -> BaseException:
    try:
        fn(*args)
    except BaseException as exc:
        return exc
    raise AssertionError("did not raise")


def fits(text: str, max_lines: int = MAX_LINES, max_chars: int = MAX_CHARS) -> bool:
    return len(text) <= max_chars and len(text.split("\n")) <= max_lines


# -- trim_traceback ---------------------------------------------------------------------


def test_a_short_traceback_is_kept_as_it_is_but_for_trailing_whitespace() -> None:
    text = f'{HEADER}\n  File "app.py", line 1, in job\nValueError: bad\n'
    assert trim_traceback(text) == text.rstrip()


def test_a_long_traceback_keeps_its_header_the_innermost_frames_and_the_exception_line() -> None:
    frames = [f'  File "app.py", line {i}, in f{i}\n    f{i + 1}()' for i in range(100)]
    text = "\n".join([HEADER, *frames, "KeyError: 'x'"])
    trimmed = trim_traceback(text)
    lines = trimmed.split("\n")
    assert fits(trimmed)
    assert lines[0] == HEADER
    assert lines[1] == f"  ... ({201 - (len(lines) - 2)} lines trimmed)"
    assert lines[-3:] == ['  File "app.py", line 99, in f99', "    f100()", "KeyError: 'x'"]
    assert "\n".join(lines[2:]) in text  # the tail, unchanged


def test_a_huge_exception_line_keeps_its_beginning() -> None:
    text = f'{HEADER}\n  File "app.py", line 1, in job\nValueError: {"x" * 10_000}'
    trimmed = trim_traceback(text)
    assert fits(trimmed)
    assert trimmed.split("\n")[-1].startswith("ValueError: xxx") and trimmed.endswith("...")


def test_wider_bounds_and_wrong_types() -> None:
    text = "\n".join(str(i) for i in range(100))
    assert trim_traceback(text, max_lines=100) == text
    assert fits(trim_traceback(text, max_lines=10, max_chars=100), 10, 100)
    with pytest.raises(ValidationError, match="traceback"):
        trim_traceback(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        trim_traceback(text, max_lines=2)


@given(
    st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=300), min_size=1, max_size=80),
    st.integers(3, 60),
    st.integers(80, 6000),
)
def test_trimming_is_bounded_keeps_the_end_and_is_idempotent(lines: list[str], max_lines: int, max_chars: int) -> None:
    text = "\n".join(lines)
    trimmed = trim_traceback(text, max_lines=max_lines, max_chars=max_chars)
    assert fits(trimmed, max_lines, max_chars)
    assert trim_traceback(trimmed, max_lines=max_lines, max_chars=max_chars) == trimmed
    whole = text.rstrip()
    if fits(whole, max_lines, max_chars):
        assert trimmed == whole
    else:
        tail = trimmed.split("\n")[-1]
        last = whole.split("\n")[-1]
        # The last line is kept whole, or, when it alone is over the bound, its beginning.
        assert tail == last or (tail.endswith("...") and last.startswith(tail[:-3]))


# -- format_traceback -------------------------------------------------------------------


def test_format_traceback_is_what_python_prints_trimmed() -> None:
    exc = caught(raise_from_depth, 2)
    text = format_traceback(exc)
    assert text is not None
    assert text.startswith(HEADER) and text.endswith("KeyError: 'innermost'")
    assert text.count("in raise_from_depth") == 3 and "test_tracebacks.py" in text


def test_format_traceback_of_a_deep_recursion_keeps_the_raising_frame() -> None:
    text = format_traceback(caught(ping, 200))
    assert text is not None and fits(text)
    assert "lines trimmed)" in text and text.endswith("KeyError: 'innermost'")
    assert 'raise KeyError("innermost")' in text


def test_format_traceback_keeps_the_cause_chain_and_copes_with_a_broken_str() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str")

    def chained() -> None:
        try:
            raise OSError("disk")
        except OSError as exc:
            raise Broken() from exc

    text = format_traceback(caught(chained))
    assert text is not None and "OSError: disk" in text and "direct cause" in text
    assert text.split("\n")[-1].endswith("Broken: <exception str() failed>")


def test_an_exception_never_raised_has_no_traceback() -> None:
    assert format_traceback(ValueError("never raised")) is None


# -- the records ------------------------------------------------------------------------


def test_outcome_and_record_trim_whatever_they_are_given() -> None:
    long = "\n".join([HEADER, *(f"  frame {i}" for i in range(1000)), "ValueError: x"])
    outcome = outcome_for("a", fire_entry(0), "failed", error="ValueError: x", traceback=long)
    assert outcome.traceback == trim_traceback(long)
    record = RunRecord(
        run_id="a@0.1", kind="fire", nominal=T0, due=T0, attempt=1, status="failed", traceback=long + "\n\n"
    )
    assert record.traceback == trim_traceback(long)
    assert (
        RunRecord(
            run_id="a@0.1", kind="fire", nominal=T0, due=T0, attempt=1, status="failed", traceback=" \n"
        ).traceback
        is None
    )
    with pytest.raises(ValidationError, match="traceback"):
        Outcome(
            run_id="a@0.1",
            schedule_id="a",
            nominal=T0,
            attempt=1,
            status="failed",
            finished_at=T0,
            traceback=42,  # type: ignore[arg-type]
        )


def test_record_dict_round_trip_and_foreign_shapes() -> None:
    record = RunRecord(
        run_id="a@0.1", kind="fire", nominal=T0, due=T0, attempt=1, status="failed", error="E: x", traceback="T\nE: x"
    )
    data = record.to_dict()
    assert data["traceback"] == "T\nE: x"
    assert RunRecord.from_dict(data) == record
    older = {k: v for k, v in data.items() if k != "traceback"}  # written before the field existed
    assert RunRecord.from_dict(older).traceback is None
    for hostile in (42, ["x"], {"a": 1}, True):
        assert RunRecord.from_dict({**data, "traceback": hostile}).traceback is None
    assert RunRecord.from_dict({**data, "traceback": "x\n" * 10_000}).traceback == trim_traceback("x\n" * 10_000)
    assert dispatched_record("a", fire_entry(0)).to_dict()["traceback"] is None


# -- LocalExecutor ----------------------------------------------------------------------


def run_locally(task: str, **changes: Any) -> Outcome:
    got: list[Outcome] = []
    done = threading.Event()

    def report(outcome: Outcome) -> None:
        got.append(outcome)
        done.set()

    executor = LocalExecutor(max_workers=1)
    executor.start(report)
    executor.submit([make_run("local", task, **changes)])
    assert done.wait(10)
    executor.shutdown()
    return got[0]


def test_local_executor_reports_the_tasks_traceback() -> None:
    outcome = run_locally("schedcore.testing.tasks:fail", args=["kaput"])
    assert outcome.status is OutcomeStatus.FAILED and outcome.error == "RuntimeError: kaput"
    assert outcome.traceback is not None
    assert outcome.traceback.startswith(HEADER) and outcome.traceback.endswith("RuntimeError: kaput")
    assert "schedcore/testing/tasks.py" in outcome.traceback and ", in fail" in outcome.traceback


def test_local_executor_reports_where_an_import_failed() -> None:
    outcome = run_locally("schedcore_no_such_module_here:task")
    assert outcome.status is OutcomeStatus.FAILED and outcome.error and outcome.error.startswith("ImportError")
    assert outcome.traceback is not None and "schedcore_no_such_module_here" in outcome.traceback


def test_local_executor_reports_no_traceback_for_a_success() -> None:
    assert run_locally("schedcore.testing.tasks:noop").traceback is None
