"""The review page's template with hostile text everywhere a producer's or the recogniser's words reach it: shown
as text, character for character, with no script but the page's own two files (support.pages' checks)."""

from __future__ import annotations

from pathlib import Path

from support.pages import HOSTILE, read_page, texts

from keylime_prod import pages
from keylime_prod.errors import ReviewError
from keylime_prod.review.model import Curve, PageChapter, PageCut, PageWord, Paragraph, ReviewPage, Speaker


def test_hostile_text_stays_text() -> None:
    words = tuple(PageWord(i, 1.0 + i, 1.5 + i, t, p, HOSTILE, p < 0.6, False)
                  for i, (t, p) in enumerate([(HOSTILE, 0.2), ("plain", 0.9)]))  # fmt: skip
    page = ReviewPage(
        episode_id="ep-1", title=HOSTILE, number=1, duration=60.0, audio=Path("ep-1.mp3"), audio_sha256="0" * 64,
        paragraphs=(Paragraph(HOSTILE, 1.0, words),), words=words, unsure=words[:1], terms=(HOSTILE,),
        speakers=(Speaker(HOSTILE, HOSTILE),),
        cuts=(PageCut("pause-0001000", "pause", 1.0, 2.0, "propose", "open", 0.9, HOSTILE, HOSTILE, HOSTILE, HOSTILE),),
        cuts_found=True, chapters=(PageChapter(0, HOSTILE, 0.0, 0.0),), curves=(Curve("after", "0,10 1000,10"),),
        target_y=10.0, target_lufs=-16.0, loudness=(-20.0, -16.0, -1.5),
        edit_files={k: Path(f"ep-1.{k}.toml") for k in ("corrections", "cuts", "speakers", "episode")},
    )  # fmt: skip
    html = pages.render("keylime_prod.review", "review.html.j2", ReviewError, page=page, token="t")
    doc = read_page(html, scripts=["", ""])
    assert [s.get("src") for s in doc.iter("script")] == ["static/wavesurfer.min.js", "static/review.js"]
    assert texts(doc, "//h1") == [f"Review: 1. {HOSTILE}"]
    assert texts(doc, "//button[contains(@class, 'w ')]")[0] == HOSTILE
    assert [el.get("data-label") for el in doc.xpath("//form[contains(@class, 'speaker')]")] == [HOSTILE]
    assert [el.get("value") for el in doc.xpath("//form[contains(@class, 'speaker')]//input")] == [HOSTILE]
    assert texts(doc, "//p[@class='context']/mark") == [HOSTILE]
    assert f"Start of “{HOSTILE}”" in texts(doc, "//form[contains(@class, 'chapter')]/label")
    # Every control has a label or its own text.
    for el in doc.xpath("//input[not(@type='radio')]"):
        assert doc.xpath(f"//label[@for='{el.get('id')}']"), el.attrib
