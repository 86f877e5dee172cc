"""The traceback a failed run keeps in its history record, formatted and trimmed in one place.

Every executor reports a failed run's traceback through :func:`format_traceback` (or,
when it only has the text -- an RQ job's recorded ``exc_info`` -- :func:`trim_traceback`),
and :class:`~schedcore.records.Outcome` and :class:`~schedcore.records.RunRecord` trim
whatever they are given with :func:`trim_traceback` too, so that a history record never
carries more than :data:`MAX_LINES` lines and :data:`MAX_CHARS` characters of it -- also
when it was read from a store that someone else wrote.

Trimming keeps the *end* of the text: the innermost frames, where the task raised, and
the exception line, which Python prints last. The frames left out are replaced by one
line saying how many lines were trimmed, after the ``Traceback (most recent call last):``
header when there is one.
"""

from __future__ import annotations

import traceback as _traceback
from types import TracebackType

from schedcore.exceptions import ValidationError

__all__ = ["MAX_CHARS", "MAX_LINES", "format_traceback", "trim_traceback"]

#: The most lines a stored traceback keeps (about the innermost dozen frames).
MAX_LINES = 30
#: The most characters a stored traceback keeps.
MAX_CHARS = 4096

_HEADER = "Traceback (most recent call last):"
_ELLIPSIS = "..."


def _marker(count: int) -> str:
    return f"  ... ({count} lines trimmed)"


def trim_traceback(text: str, *, max_lines: int = MAX_LINES, max_chars: int = MAX_CHARS) -> str:
    """``text`` cut to at most ``max_lines`` lines and ``max_chars`` characters, keeping its end.

    Trailing whitespace is dropped; text within both bounds is returned as it is otherwise,
    and trimming trimmed text changes nothing. When even the last line is longer than the
    bound, its beginning is kept (the exception's type), ending in ``...``. ValidationError
    when ``text`` is not a str.
    """
    if not isinstance(text, str):
        raise ValidationError("traceback", text, "expected text (str)")
    if max_lines < 3 or max_chars < 80:
        raise ValueError("trim_traceback needs room for at least 3 lines and 80 characters")
    text = text.rstrip()
    if len(text) <= max_chars and text.count("\n") < max_lines:
        return text
    lines = text.split("\n")
    head = lines[:1] if lines[0] == _HEADER and len(lines) > 1 else []
    body = lines[len(head) :]
    # Room for the tail once the header and the marker (as long as it can get) are in.
    room_lines = max_lines - len(head) - 1
    room_chars = max_chars - sum(len(line) + 1 for line in head) - len(_marker(len(body))) - 1
    kept: list[str] = []
    used = 0
    for line in reversed(body):
        if len(kept) == room_lines or used + len(line) + (1 if kept else 0) > room_chars:
            break
        used += len(line) + (1 if kept else 0)
        kept.append(line)
    if not kept:  # the exception line alone is too long: keep its beginning, which names the type
        kept = [body[-1][: room_chars - len(_ELLIPSIS)] + _ELLIPSIS]
    trimmed = len(body) - len(kept)
    return "\n".join([*head, _marker(trimmed), *reversed(kept)])


def format_traceback(exc: BaseException, tb: TracebackType | None = None) -> str | None:
    """The trimmed traceback of ``exc`` (raised at ``tb``; by default ``exc.__traceback__``),
    with its causes and contexts, as Python prints it; None when it has no frames (it was
    never raised) or cannot be formatted -- a failed run is reported without one then."""
    frames = tb if tb is not None else exc.__traceback__
    if frames is None:
        return None
    try:
        text = "".join(_traceback.format_exception(type(exc), exc, frames))
    except Exception:  # a broken __str__ is handled by traceback itself; anything else must not lose the outcome
        return None
    return trim_traceback(text) or None
