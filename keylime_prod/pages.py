"""HTML pages from Jinja templates that escape by default, with one stylesheet for every page.

Each stage that writes a page keeps its template beside it (``<stage>/templates/<page>.html.j2``); the stylesheet
all pages share is ``templates/style.css`` in this package, which a template inlines with
``{% include "style.css" %}`` so each page stays one self-contained file (it is published as it is).

Autoescaping is on for every template: a value reaches the page HTML-escaped unless it is marked ``Markup``, so no
renderer can forget to escape an episode title, a speaker's name or a word the recogniser heard. Template text itself
(the markup, the stylesheet, the seek script) is never escaped.
"""

from __future__ import annotations

import functools
from typing import Any

import jinja2

from .errors import KeylimeError


@functools.cache
def environment(package: str) -> jinja2.Environment:
    """The Jinja environment for the templates of ``package`` (a stage package such as ``keylime_prod.notes``).

    Templates resolve in ``package``'s ``templates/`` folder first, then in the shared one (``style.css``).
    ``trim_blocks`` and ``lstrip_blocks`` let a template put its tags on lines of their own without adding blank
    lines to the page; ``StrictUndefined`` makes a misspelled variable an error instead of an empty string.
    """
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [jinja2.PackageLoader(package, "templates"), jinja2.PackageLoader("keylime_prod", "templates")]
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(package: str, template: str, error: type[KeylimeError], **context: Any) -> str:
    """``template`` of ``package`` rendered with ``context``; a template that is missing or fails raises ``error``.

    Either is a broken installation or a bug, never bad input: every value is escaped, whatever it holds.
    """
    try:
        return environment(package).get_template(template).render(**context)
    except jinja2.TemplateError as e:
        raise error(
            f"cannot render the page: {type(e).__name__}: {e}",
            where=f"{package}/templates/{template}",
            hint="reinstall keylime-prod (its templates ship inside the package)",
        ) from e
