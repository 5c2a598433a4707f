"""Reading our HTML pages back as a browser would: lxml's HTML parser, with the checks every page must pass.

``HOSTILE`` is what a title, a name or a recognised word must be able to hold: markup, an attribute breakout, an
ampersand (bare and as an entity) and both quotes. A page shows it as text, character for character.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

import lxml.html

HOSTILE = "<script>alert(1)</script> \"onmouseover=alert(2) x='y' AT&T &amp; <b>bold</b>"
#: The stylesheet every page inlines.
STYLESHEET = resources.files("keylime_prod").joinpath("templates/style.css").read_text("utf-8")


def read_page(text: str, *, scripts: Sequence[str] = ()) -> lxml.html.HtmlElement:
    """``text`` parsed; fails unless the only ``<script>`` elements are ``scripts`` (our own, by their exact text),
    no element carries an event handler or a ``<b>`` a value smuggled in, and the stylesheet is inlined whole."""
    doc = lxml.html.document_fromstring(text)
    assert [s.text or "" for s in doc.iter("script")] == list(scripts)
    assert not [(el.tag, name) for el in doc.iter() for name in el.attrib if name.lower().startswith("on")]
    assert not list(doc.iter("b"))
    assert [(s.text or "").strip() for s in doc.iter("style")] == [STYLESHEET.strip()]
    return doc


def texts(doc: lxml.html.HtmlElement, xpath: str) -> list[str]:
    """The text content of each element ``xpath`` finds."""
    return [el.text_content() for el in doc.xpath(xpath)]
