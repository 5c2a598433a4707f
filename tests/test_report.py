"""The production report (issue 11): build/<id>/report.html from master.json, loudness.json and words.json.

The page is read back with lxml's HTML parser and its plots with Pillow; the curves and words are fixtures in the
formats the master and transcribe stages agreed to write (docs: PROTOCOL), at levels we know.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import lxml.html
import pytest
from PIL import Image
from support.archive import feed_xml, make_old_episodes
from support.http import FakeHost
from support.media import ebur128_curves
from support.pages import HOSTILE, read_page, texts
from support.reporting import HOP
from support.reporting import curves as _curves
from support.reporting import master as _master
from support.reporting import part as _part

from keylime_prod import report
from keylime_prod.audio.artefact import DenoiseSummary, LevelerSummary, Master
from keylime_prod.catalogue.importer import import_feed
from keylime_prod.chapters.artefact import ChapterMark
from keylime_prod.errors import AudioError, TranscriptError
from keylime_prod.fsutil import sha256_file
from keylime_prod.transcript.artefact import TimedWord


def _words(tmp_path: Path) -> Path:
    words = [
        {"start": 12.0, "end": 12.4, "word": " The", "probability": 0.99, "speaker": "Lara"},
        {"start": 12.4, "end": 13.0, "word": " paper", "probability": 0.95, "speaker": "Lara"},
        {"start": 13.0, "end": 13.5, "word": " by", "probability": 0.97, "speaker": "Lara"},
        {"start": 64.0, "end": 64.6, "word": " Lingarm,", "probability": 0.31, "speaker": "Jason"},
        {"start": 70.0, "end": 70.5, "word": " lunar", "probability": 0.12, "speaker": "Jason"},
        {"start": 71.0, "end": 71.5, "word": " baby.", "probability": 0.55, "speaker": "Jason"},
        {"start": 72.0, "end": 72.5, "word": " Varpio", "probability": 0.90, "speaker": "Jason"},
    ]
    path = tmp_path / "words.json"
    path.write_text(json.dumps({"words": words}))
    return path


def _write(tmp_path: Path, master: Master, *, curves: bool = True, words: bool = True) -> report.Report:
    return report.write_report(
        master,
        tmp_path / "report.html",
        title="Teams & 'trust' <live>",
        target_lufs=-16.0,
        ceiling_dbtp=-1.0,
        curves=report.load_curves(_curves(tmp_path)) if curves else None,
        words=report.load_words(_words(tmp_path)) if words else None,
        chapters=(ChapterMark("Welcome", 0.0, 40.0), ChapterMark("Findings", 40.0, 100.0)),
        glossary=("Lingard", "Varpio", "KeyLIME", "Varpio"),
    )


def _tables(doc: lxml.html.HtmlElement) -> list[list[list[str]]]:
    return [
        [[c.text_content() for c in tr.xpath("./td|./th")] for tr in t.xpath(".//tr")] for t in doc.xpath("//table")
    ]


def test_report_page_is_self_contained_with_real_plots(tmp_path: Path) -> None:
    rep = _write(tmp_path, _master(tmp_path))
    text = rep.html.read_text("utf-8")
    doc = lxml.html.fromstring(text)
    assert doc.findtext(".//title") == "Production report: Teams & 'trust' <live>"  # escaped, read back as written
    sources = [el.get("src") or el.get("href") for el in doc.xpath("//*[@src or @href]")]
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)  # nothing fetched from outside
    images = [Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))) for s in sources]
    assert [im.format for im in images] == ["PNG", "PNG"]
    assert all(im.width >= 800 and im.height >= 150 for im in images)
    # The loudness plot is not blank: it holds many colours (curves, shading, target line).
    assert len(images[0].convert("RGB").getcolors(1 << 20) or []) > 50


def test_report_figures_from_master_and_curves(tmp_path: Path) -> None:
    leveler = LevelerSummary(12, 3, 0.0, 6.5, 2.1, 0.8)
    denoise = DenoiseSummary("deepfilternet", 1, 21.0, 33.5, None, None, 0)
    rep = _write(tmp_path, _master(tmp_path, leveler=leveler, denoise=denoise))
    assert (rep.integrated_before, rep.integrated_after, rep.method) == (-21.3, -16.1, "limiter")
    # Per recording: BS.1770 gating drops the -60 pauses, so each part reads its speech level.
    assert [(p.name, p.before_lufs, p.after_lufs) for p in rep.parts] == [
        ("lara.flac", -24.0, -15.0),
        ("jason.m4a", -17.0, -19.0),
    ]
    assert {s.name: s.after_lufs for s in rep.speakers} == {"Lara": -15.0, "Jason": -19.0}
    assert rep.noise_floor_lufs == -60.0
    assert rep.processing["limiter"]["max_reduction_db"] == -1.35
    assert rep.processing["leveler"] == {
        "stretches": 12, "stretches_levelled": 3, "gain_min_db": 0.0, "gain_max_db": 6.5,
        "turn_spread_before_lu": 2.1, "turn_spread_after_lu": 0.8,
    }  # fmt: skip
    # A figure the denoiser has none of (no hum measured) is left out, not shown as "None".
    assert rep.processing["denoise"] == {
        "engine": "deepfilternet", "recordings_denoised": 1, "noise_under_speech_db_before": 21.0,
        "noise_under_speech_db_after": 33.5, "dc_offsets_removed": 0,
    }  # fmt: skip
    assert list(rep.processing) == ["limiter", "leveler", "denoise", "codec calibration"]
    summary = dict(rep.rows())
    assert summary["reached by"].startswith("gain plus true-peak limiter")
    rows = _tables(lxml.html.fromstring(rep.html.read_text("utf-8")))
    flat = {r[0]: r[1] for t in rows for r in t if len(r) == 2}
    assert flat["integrated"] == "-21.3 -> -16.1 LUFS (target -16)"
    assert flat["true peak"] == "-0.40 -> -1.30 dBTP (ceiling -1)"
    assert json.loads(json.dumps(rep.to_json()))["parts"][1]["after_lufs"] == -19.0


def test_transcript_review_lists_unsure_words_and_missing_terms(tmp_path: Path) -> None:
    rep = _write(tmp_path, _master(tmp_path))
    assert [(w.text, w.start, w.probability) for w in rep.low_confidence] == [
        ("lunar", 70.0, 0.12),
        ("Lingarm,", 64.0, 0.31),
        ("baby.", 71.0, 0.55),
    ]
    missing = {m.text: m for m in rep.missing_terms}
    assert set(missing) == {"Lingard", "KeyLIME"}  # Varpio was heard; listed twice, checked once
    assert missing["Lingard"].start == 64.0 and "lingarm" in missing["Lingard"].note
    assert (missing["KeyLIME"].start, missing["KeyLIME"].clock) == (None, "--:--:--")  # nothing close to point at
    rows = _tables(lxml.html.fromstring(rep.html.read_text("utf-8")))
    review = next(t for t in rows if t[0] == ["time", "word", "probability", "speaker"])
    assert review[1] == ["00:01:10", "lunar", "0.12", "Jason"]


def test_hostile_text_in_every_field_is_shown_as_text(tmp_path: Path) -> None:
    """The title, recording names, speaker names, heard words and glossary terms reach the page as text."""
    parts = (_part(f"{HOSTILE}.flac", -24.0, 8.0), _part("b.m4a", -17.0, 1.4))
    denoise = DenoiseSummary(f"{HOSTILE} value", 1, 21.0, 30.0, None, None, 0)  # the figures' names are declared
    master = _master(tmp_path, parts=parts, denoise=denoise)
    words = [
        TimedWord(12.0, 12.5, f" {HOSTILE}", 0.2, f"{HOSTILE} speaker"),
        TimedWord(60.0, 60.5, " fine", 0.99, "Jason"),
    ]
    rep = report.write_report(
        master,
        tmp_path / "report.html",
        title=HOSTILE,
        target_lufs=-16.0,
        ceiling_dbtp=-1.0,
        curves=report.load_curves(_curves(tmp_path)),
        words=words,
        glossary=(f"{HOSTILE} term",),
    )
    doc = read_page(rep.html.read_text("utf-8"))

    assert texts(doc, "//title") == texts(doc, "//h1") == [f"Production report: {HOSTILE}"]
    cells = texts(doc, "//td")
    for want in (
        f"recording {HOSTILE}.flac",  # the summary table
        f"{HOSTILE}.flac",  # the recordings table
        f"speaker {HOSTILE} speaker",
        f"{HOSTILE} speaker",  # the speakers table and the review list
        HOSTILE,  # the unsure word
        f"{HOSTILE} value",  # the denoiser's engine, a text figure
        f"{HOSTILE} term",
    ):
        assert want in cells, want
    review = next(t for t in _tables(doc) if t[0] == ["time", "word", "probability", "speaker"])
    assert review[1] == ["00:00:12", HOSTILE, "0.2", f"{HOSTILE} speaker"]


def test_report_without_curves_or_words_says_what_is_missing(tmp_path: Path) -> None:
    rep = _write(tmp_path, _master(tmp_path), curves=False, words=False)
    text = rep.html.read_text("utf-8")
    assert "No loudness curves (loudness.json)" in text and "No word list (words.json)" in text
    assert rep.noise_floor_lufs is None and rep.speakers == ()
    assert [p.after_lufs for p in rep.parts] == [None, None]
    assert report.load_curves(tmp_path / "absent.json") is None and report.load_words(tmp_path / "absent.json") is None


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    """A loudness.json or words.json that is not the declared shape is one error naming the file and the field."""
    bad = tmp_path / "loudness.json"
    bad.write_text(json.dumps({"hop_s": 0.1, "before": {"momentary": []}}))
    with pytest.raises(AudioError, match=r"loudness.json: unreadable loudness curves: before.short_term: Field req"):
        report.load_curves(bad)
    bad.write_text(
        json.dumps(
            {
                "hop_s": 0.1,
                "before": {"momentary": ["x"], "short_term": []},
                "after": {"momentary": [], "short_term": []},
            }
        )
    )
    with pytest.raises(AudioError, match=r"loudness.json: unreadable loudness curves: before.momentary.0"):
        report.load_curves(bad)
    words = tmp_path / "words.json"
    words.write_text(json.dumps({"words": [{"start": 1, "word": "x"}]}))
    with pytest.raises(TranscriptError, match=r"words.json: unreadable word list: words.0.end: Field required"):
        report.load_words(words)


def test_cli_report_stage_runs_caches_opens_and_is_published(
    tmp_path: Path, make_configs: Callable[..., Path], make_tone: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from keylime_prod.cli import app
    from keylime_prod.config import load_settings
    from keylime_prod.pipeline.release import publish_episodes

    cfg = make_configs([make_tone("raw.wav", seconds=4.0, db=-20.0)])
    build = tmp_path / "build"
    args = ["report", "ep-1", "--configs", str(cfg), "--build-dir", str(build)]
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    master = json.loads((build / "ep-1" / "master.json").read_text())
    assert doc["integrated"][1] == master["output_loudness"]["integrated_lufs"] and doc["html"] == "report.html"
    page = (build / "ep-1" / "report.html").read_text("utf-8")
    assert "Production report: 1. Test episode" in page
    # The master stage's real loudness.json (the agreed format) is drawn: one steady tone, so the curve's gated level
    # over the recording equals what the master measured for the file, within the blocks' edges.
    assert doc["has_curves"] is True and page.count('src="data:image/png;base64,') == 2
    curves = json.loads((build / "ep-1" / "loudness.json").read_text())
    assert curves["hop_s"] > 0 and set(curves["after"]) == {"momentary", "short_term"}
    assert abs(doc["parts"][0]["after_lufs"] - doc["integrated"][1]) < 1.0
    state = json.loads((build / "ep-1" / "state.json").read_text())
    assert {"master", "report"} <= set(state)  # a stage of the pipeline, with its cache key
    # Again: up to date, loaded from report.json; --open hands the page to the browser ($BROWSER here).
    seen = tmp_path / "opened.txt"
    monkeypatch.setenv("BROWSER", f"{sys.executable} -c \"import sys; open({str(seen)!r}, 'w').write(sys.argv[1])\" %s")
    res = CliRunner().invoke(app, [*args, "--open"])
    assert res.exit_code == 0, res.output
    reached = "gain plus true-peak limiter" if doc["method"] == "limiter" else "gain alone"
    assert "integrated" in res.stdout and reached in res.stdout
    assert seen.read_text() == (build / "ep-1" / "report.html").resolve().as_uri()
    # Published with the episode.
    settings = load_settings(cfg, build)
    local = settings.show.storage.model_copy(update={"local_dir": tmp_path / "public"})
    settings = settings.model_copy(update={"show": settings.show.model_copy(update={"storage": local})})
    published = publish_episodes(settings, ["ep-1"], now=dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc))
    (rep,) = [f for f in published.episodes[0].files if f.role == "report"]
    assert rep.content_type == "text/html" and rep.sha256 == sha256_file(build / "ep-1" / "report.html")


def test_kept_archive_episode_gets_curves_and_says_it_was_kept(
    tmp_path: Path, make_configs: Callable[..., Path], jfk: Path, old_host: FakeHost
) -> None:
    """Issue 12's kept master (the published MP3 as it was) writes loudness.json like any master, so its report
    draws the curve and says the episode was kept as published, never "re-master to get them"; the curve is what
    ffmpeg's own ebur128 meter reports every 100 ms on the same MP3."""
    from typer.testing import CliRunner

    from keylime_prod.cli import app

    old = make_old_episodes(old_host, 1)
    url = old_host.put("feed.xml", feed_xml(old_host, old).encode(), "application/rss+xml")
    cfg = make_configs([jfk])
    (cfg / "episodes" / "ep-1.toml").unlink()  # only the imported episode
    (eid,) = [e.episode_id for e in import_feed(url, cfg, media_dir=tmp_path / "media").episodes]
    build = tmp_path / "build"
    args = ["report", eid, "--configs", str(cfg), "--build-dir", str(build), "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    folder = build / eid
    assert doc["method"] == "kept" and (folder / f"{eid}.mp3").read_bytes() == old[0].mp3  # kept, not re-encoded
    page = (folder / "report.html").read_text("utf-8")
    assert "re-master to get them" not in page and "Kept as published" in page
    assert doc["has_curves"] is True and page.count('src="data:image/png;base64,') == 2
    rows = dict(r for r in _tables(lxml.html.fromstring(page))[0] if len(r) == 2)
    assert rows["reached by"].startswith("kept as published")
    # The agreed format; before and after are the same audio here, measured once.
    curves = json.loads((folder / "loudness.json").read_text())
    assert curves["hop_s"] == HOP and curves["before"] == curves["after"]
    ours_m, ours_s = curves["after"]["momentary"], curves["after"]["short_term"]
    master = json.loads((folder / "master.json").read_text())
    assert abs(len(ours_m) * HOP - master["duration"]) <= 0.2 and len(ours_s) == len(ours_m)
    ff_m, ff_s = ebur128_curves(folder / f"{eid}.mp3")
    n = min(len(ff_m), len(ours_m))
    dm = [abs(a - b) for a, b in zip(ff_m[4:n], ours_m[4:n], strict=True) if b is not None and a > -60]
    ds = [abs(a - b) for a, b in zip(ff_s[30:n], ours_s[30:n], strict=True) if b is not None and a > -60]
    assert len(dm) > 25 and max(dm) <= 0.5 and max(ds) <= 0.3, (max(dm), max(ds))
    # A kept build made before loudness.json was written (or one whose file was deleted) is kept again: copying and
    # measuring the MP3 is cheap, so the master stage is not taken as cached without its curves.
    (folder / "loudness.json").unlink()
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert json.loads((folder / "loudness.json").read_text()) == curves
    assert "re-master to get them" not in (folder / "report.html").read_text("utf-8")


def test_a_term_heard_in_a_close_spelling_is_not_listed() -> None:
    said = "Welcome to Key LIME with Varpio's team on post-graduate medical education and narrative reviews by Lingarm"
    words = [TimedWord(float(i), i + 0.5, f" {w}", 0.9, "Lara") for i, w in enumerate(said.split())]
    terms = ("KeyLIME", "Varpio", "postgraduate medical education", "narrative review", "Lingard", "Klasen")
    _low, missing = report._review(words, terms)
    # Case, spaces, hyphens and a plural or possessive "s" are spelling; a different letter is a word to check.
    assert [m.text for m in missing] == ["Lingard", "Klasen"]
    assert missing[0].start == 15.0 and "lingarm" in missing[0].note


def test_the_review_list_asks_only_for_the_episodes_own_people_and_terms(tmp_path: Path) -> None:
    from keylime_prod.config import load_episode, load_settings
    from keylime_prod.pipeline import STAGES, Run
    from keylime_prod.pipeline.stages import _report_glossary

    root = Path(__file__).resolve().parents[1] / "configs"
    settings = load_settings(root, tmp_path)
    ep = load_episode(root, "episode-258")
    terms = _report_glossary(Run(settings=settings, episode=ep, layout=settings.layout(ep.id), stages=STAGES))
    assert {"Varpio", "Klasen", "Lingard", "Lara Varpio", "Jason Frank", "Medical Teacher"} <= set(terms)
    # Show hosts not in this episode, the show's own terms and the titles are not owed to this transcript.
    for absent in ("Linda Snell", "Jonathan Sherbino", "KeyLIME", "Royal College", ep.title):
        assert absent not in terms
    assert ep.paper is not None and ep.paper.title not in terms
