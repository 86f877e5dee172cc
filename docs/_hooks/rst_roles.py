"""mkdocs hook: the Sphinx roles of schedcore's docstrings, shown as plain code.

The docstrings cross-reference with ``:class:`~schedcore.memory.MemoryStore``` and the
like, which mkdocstrings renders as the role's name followed by the code. This keeps
the code only (the last dotted part after ``~``, as Sphinx does).
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|attr|data|exc|obj|const):<code>(~?)([^<]*)</code>")


def _code(match: re.Match[str]) -> str:
    tilde, target = match.group(1), match.group(2)
    return f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    return _ROLE.sub(_code, html)
