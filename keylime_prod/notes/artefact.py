"""The notes stage's artefact: the show notes written (Markdown and HTML) and the article they say, as data.

The article is what later stages take from the notes: its text blocks and links (publishing puts it in the feed's
``content:encoded``), so no stage reads the notes back out of their HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import pages
from ..errors import NotesError


@dataclass(frozen=True)
class Link:
    """A link in the notes: what the reader sees and where it goes."""

    label: str
    url: str


@dataclass(frozen=True)
class Section:
    """One part of the article under its ``heading`` (``""``: none). A paragraph is a run of text and links;
    ``lines`` are kept one per line (the chapter timestamps); ``links`` close the section on one line."""

    heading: str
    paragraphs: tuple[tuple[str | Link, ...], ...] = ()
    bullets: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()
    links: tuple[Link, ...] = ()


@dataclass(frozen=True)
class Article:
    """What the show notes say, in order: the title and the sections under it."""

    title: str
    sections: tuple[Section, ...]

    def links(self) -> tuple[Link, ...]:
        """Every link, in reading order."""
        out: list[Link] = []
        for sec in self.sections:
            out += [p for para in sec.paragraphs for p in para if isinstance(p, Link)]
            out += sec.links
        return tuple(out)

    def html(self, *, title: bool = True) -> str:
        """The article as an HTML fragment from its template (``templates/article.html.j2``), every text escaped:
        the notes page's ``<article>``; without its ``<h1>`` title (``title=False``) the feed's ``content:encoded``,
        which apps show under the item's own title."""
        package = __package__ or "keylime_prod.notes"
        context = {"title": self.title, "sections": self.sections, "with_title": title}
        return pages.render(package, "article.html.j2", NotesError, **context).strip()


@dataclass(frozen=True)
class Notes:
    """The show-notes stage's result: the files written and the article they hold."""

    markdown: Path
    html: Path
    article: Article

    def summary(self) -> dict[str, Any]:
        """A short machine-readable summary (``--json``)."""
        return {"markdown": str(self.markdown), "html": str(self.html)}
