"""mkdocs hook: links from a docs page to a file of the repository outside ``docs/``.

The pages link to ``../examples/hello.toml`` and the like, which work on GitHub and in an
editor but are no page of the site (``mkdocs build --strict`` refuses them). This hook
checks that each such file exists -- a missing one aborts the build -- and shows it as
the repository path in code style instead of a dead link.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

_LINK = re.compile(r"\[([^\]]+)\]\(((?:\.\./)+[^)#\s]+)(#[^)\s]*)?\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs_dir = Path(config["docs_dir"]).resolve()
    root = docs_dir.parent
    page_dir = posixpath.dirname(page.file.src_uri)

    def replace(match: re.Match[str]) -> str:
        text, target = match.group(1), match.group(2)
        path = (docs_dir / page_dir / target).resolve()
        if path.is_relative_to(docs_dir):
            return match.group(0)  # a page of the site: mkdocs validates it
        if not path.is_relative_to(root) or not path.exists():
            raise PluginError(f"{page.file.src_uri} links to {target}, which is not a file of the repository")
        return f"{text} (`{path.relative_to(root).as_posix()}` in the repository)"

    return _LINK.sub(replace, markdown)
