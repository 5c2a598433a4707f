"""The production report: build/<id>/report.html from master.json, loudness.json, words.json and cuts.json.

The page is read back with lxml's HTML parser, its plots with Pillow and matplotlib's own geometry, its layout and
player in headless Chromium (Playwright); the curves and words are fixtures in the formats the master and transcribe
stages write, at levels we know, and the multitrack report is that of the committed demo session, mastered for real.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
import itertools
import json
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from PIL import Image
from support.archive import feed_xml, make_old_episodes
from support.configs import make_show, storage_settings
from support.http import FakeHost
from support.media import ebur128_curves
from support.pages import HOSTILE, read_page, texts
from support.reporting import HOP
from support.reporting import curves as _curves
from support.reporting import master as _master
from support.reporting import part as _part
from support.s3 import BUCKET, RcloneS3, get_sha256, raw_client

from keylime_prod import publish, report, timecode
from keylime_prod.audio import align
from keylime_prod.audio.artefact import (
    CodecCalibration,
    DenoiseSummary,
    LevelerSummary,
    LimiterFigures,
    Master,
    MasteredDetails,
    TimelineSegment,
)
from keylime_prod.catalogue.importer import import_feed
from keylime_prod.chapters.artefact import ChapterMark
from keylime_prod.config import CutDecisions, OwnCut, ReportSettings, load_episode, load_settings
from keylime_prod.edit.artefact import Candidate, Cuts, read_cuts, write_cuts
from keylime_prod.errors import AudioError, TranscriptError
from keylime_prod.fsutil import sha256_file
from keylime_prod.report import labels
from keylime_prod.transcript.artefact import TimedWord

REPO = Path(__file__).resolve().parents[1]
#: The page's one script: a click on a time seeks the player.
SEEK_SCRIPT = resources.files("keylime_prod.report").joinpath("templates/seek.js").read_text("utf-8").strip()


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
    # Nothing is fetched from outside: the plots are in the page, the player and the time links play the MP3 beside it.
    wide = [el.get("src") for el in doc.xpath("//picture//img")]
    phone = [el.get("srcset") for el in doc.xpath("//picture//source")]
    links = [el.get("src") or el.get("href") for el in doc.xpath("//*[@src or @href]") if el.tag != "img"]
    assert links and all(x == "ep-9.mp3" or x.startswith("ep-9.mp3#t=") for x in links)
    assert [el.get("src") for el in doc.xpath("//audio")] == ["ep-9.mp3"]
    assert all(x.startswith("data:image/png;base64,") for x in wide + phone)
    images = {x: Image.open(io.BytesIO(base64.b64decode(x.split(",", 1)[1]))) for x in wide + phone}
    assert [im.format for im in images.values()] == ["PNG"] * 4
    # Drawn for a wide screen and for a phone, where the page shows the plot at about its own size.
    assert all(images[x].width >= 900 and images[x].height >= 150 for x in wide)
    assert all(400 <= images[x].width <= 600 for x in phone)
    assert [el.get("media") for el in doc.xpath("//picture//source")] == [f"(max-width: {report.PHONE_MAX_PX}px)"] * 2
    # The loudness plot is not blank: it holds many colours (curves, shading, target line).
    assert len(images[wide[0]].convert("RGB").getcolors(1 << 20) or []) > 50


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
    assert summary["Level reached by"] == "gain plus true-peak limiter (+5.2 dB)"
    rows = _tables(lxml.html.fromstring(rep.html.read_text("utf-8")))
    flat = {r[0]: r[1] for t in rows for r in t if len(r) == 2}
    assert flat["Loudness"] == "-16.1 LUFS (target -16 LUFS, within 1 LU); before mastering -21.3 LUFS"
    assert flat["Peak"] == "-1.3 dBTP (ceiling -1 dBTP); before mastering -0.4 dBTP"
    # The steps' figures by their plain names, with units.
    assert flat["deepest gain reduction"] == "-1.4 dB" and flat["time the limiter was working"] == "0.1 s"
    assert flat["loudness difference between turns, before"] == "2.1 LU"
    assert flat["largest leveler change"] == "+6.5 dB" and flat["smallest leveler change"] == "0.0 dB"
    assert flat["room noise under the speech, after"] == "33.5 dB"
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
    review = next(t for t in rows if t[0] == ["time", "word", "how sure", "speaker"])
    assert review[1] == ["00:01:10", "lunar", "12 %", "Jason"]


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
    doc = read_page(rep.html.read_text("utf-8"), scripts=[SEEK_SCRIPT])

    assert texts(doc, "//title") == texts(doc, "//h1") == [f"Production report: {HOSTILE}"]
    cells = texts(doc, "//td|//th")
    for want in (
        f"Recording {HOSTILE}.flac",  # the summary table
        f"{HOSTILE}.flac",  # the recordings table
        f"Speaker {HOSTILE} speaker",
        f"{HOSTILE} speaker",  # the speakers table and the review list
        HOSTILE,  # the unsure word
        f"{HOSTILE} value",  # the denoiser's engine, a text figure
        f"{HOSTILE} term",
    ):
        assert want in cells, want
    review = next(t for t in _tables(doc) if t[0] == ["time", "word", "how sure", "speaker"])
    assert review[1] == ["00:00:12", HOSTILE, "20 %", f"{HOSTILE} speaker"]


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
    assert "Loudness" in res.stdout and reached in res.stdout
    assert seen.read_text() == (build / "ep-1" / "report.html").resolve().as_uri()
    # Published with the episode only when the show asks ([report] publish = true); by default it stays here.
    settings = load_settings(cfg, build)
    local = settings.show.storage.model_copy(update={"local_dir": tmp_path / "public"})
    settings = settings.model_copy(update={"show": settings.show.model_copy(update={"storage": local})})
    now = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    published = publish_episodes(settings, ["ep-1"], now=now)
    assert "report" not in {f.role for f in published.episodes[0].files}
    assert not [p for p in (tmp_path / "public").rglob("*.html") if p.name.startswith("report")]
    asks = settings.show.model_copy(update={"report": ReportSettings(publish=True)})
    published = publish_episodes(settings.model_copy(update={"show": asks}), ["ep-1"], now=now)
    files = published.episodes[0].files
    (rep,) = [f for f in files if f.role == "report"]
    (audio,) = [f for f in files if f.role == "audio"]
    assert rep.content_type == "text/html"
    # The published page's player and time links play the published MP3 (its key carries its hash); the build's page
    # plays the master beside it.
    page = lxml.html.fromstring((tmp_path / "public" / rep.key).read_text("utf-8"))
    assert [el.get("src") for el in page.xpath("//audio")] == [audio.url]
    hrefs = [a.get("href") for a in page.xpath("//a[@class='ts']")]
    assert hrefs and all(h.startswith(f"{audio.url}#t=") for h in hrefs)
    built = lxml.html.fromstring((build / "ep-1" / "report.html").read_text("utf-8"))
    assert [el.get("src") for el in built.xpath("//audio")] == ["ep-1.mp3"]
    # Rendered again on the next publish, byte for byte: the same object, nothing new to upload.
    again = publish_episodes(settings.model_copy(update={"show": asks}), ["ep-1"], now=now)
    assert [(f.key, f.sha256) for f in again.episodes[0].files if f.role == "report"] == [(rep.key, rep.sha256)]


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
    (eid,) = [e.episode_id for e in import_feed(url, cfg, media_dir=tmp_path / "media", allow_private=True).episodes]
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
    assert rows["Level reached by"] == "kept as published (not re-encoded)"
    assert rows["Loudness"].endswith("within 1 LU)")  # one measurement: no "before mastering"
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


# --------------------------------------------------------------------------------------- plain words, units, numbers


def _body_text(page: str) -> str:
    """What a reader sees: the page's text without its stylesheet and script."""
    doc = lxml.html.document_fromstring(page)
    for el in doc.xpath("//style|//script"):
        el.drop_tree()
    return " ".join(" ".join(doc.itertext()).split())


def test_every_figure_the_master_records_has_a_plain_label() -> None:
    for cls in (LimiterFigures, LevelerSummary, DenoiseSummary, CodecCalibration):
        for f in dataclasses.fields(cls):
            assert f.name in labels.FIGURES, f"{cls.__name__}.{f.name} has no label"
    assert all(lab.text and "_" not in lab.text for lab in labels.FIGURES.values())


def test_numbers_are_rounded_with_units_and_never_minus_zero() -> None:
    assert labels.number(-0.004, 2, "LU", signed=True) == "0.00 LU"
    assert labels.number(-0.04, 1, "dB") == "0.0 dB"
    assert labels.number(6.46, 1, "dB", signed=True) == "+6.5 dB"
    assert labels.number(None, 1, "LUFS", none="not measured") == "not measured"
    assert labels.figure("gain_range_db", [-0.001, 1.06]) == ("leveler changes", "0.0 to +1.1 dB")
    assert labels.figure("hum_hz", None) == ("mains hum", "none")
    assert [labels.duration(x) for x in (14.6, 65, 3725)] == ["15 s", "1 min 05 s", "1 h 02 min"]


def test_page_shows_no_internal_names_and_no_minus_zero(tmp_path: Path) -> None:
    master = _master(tmp_path, leveler=LevelerSummary(12, 3, -0.001, 6.5, 2.1, 0.8))
    assert isinstance(master.details, MasteredDetails)
    details = dataclasses.replace(master.details, codec_calibration=CodecCalibration(-0.001, 0.27))
    rep = _write(tmp_path, dataclasses.replace(master, details=details))
    text = _body_text(rep.html.read_text("utf-8"))
    assert not re.search(r"(?<![\w.])-0(?:\.0+)?(?![\d.])", text), re.findall(r".{30}-0[^\d.].{10}", text)
    for key in (k for k in labels.FIGURES if "_" in k):  # a code name ("max_reduction_db"), not a word
        assert key not in text, key
    assert "MP3 encoding changed the loudness by 0.00 LU" in text
    assert "smallest leveler change 0.0 dB" in text and "speech stretches measured 12" in text
    # The CLI's summary gives the same rows in the same words.
    assert not [v for _, v in rep.rows() if re.search(r"(?<![\w.])-0(?:\.0+)?(?![\d.])", v)]


# ------------------------------------------------------------------------------------------------------- plots


def _dense_chapters(n: int, every: float) -> tuple[ChapterMark, ...]:
    return tuple(ChapterMark(f"Chapter {i}", 10.0 + i * every, 10.0 + (i + 1) * every) for i in range(n))


@pytest.mark.parametrize("phone", [False, True])
def test_legends_sit_outside_the_plots_and_chapter_numbers_never_overlap(tmp_path: Path, phone: bool) -> None:
    """matplotlib's own layout says where each text landed: the legends are off the plotted area and inside the
    picture, and twelve chapters four seconds apart get twelve numbers that touch neither each other nor the legend."""
    import matplotlib

    master = _master(tmp_path)
    curves = report.load_curves(_curves(tmp_path))
    assert curves is not None
    chapters = _dense_chapters(12, 4.0)
    with matplotlib.rc_context({**report._FONT, "text.parse_math": False}):
        loud = report._loudness_figure(curves, master, chapters, -16.0, -1.0, phone=phone)
        parts = (report.Level("lara.flac", -15.0, -24.0), report.Level("jason.m4a", -19.0, -17.0))
        levels = report._levels_figure(parts, (), (report.Level("Lara", -15.0),), -16.0, phone=phone)
    assert levels is not None
    for fig in (loud, levels):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        (ax,) = fig.axes
        (legend,) = fig.legends
        box, plotted = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
        assert not box.overlaps(plotted)
        assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y0 >= 0 and box.y1 <= fig.bbox.height
    numbers = [t for t in loud.axes[0].texts]
    assert sorted(int(t.get_text()) for t in numbers) == list(range(1, 13))
    boxes = [t.get_window_extent(fig.canvas.get_renderer()) for t in numbers]
    assert not [(a, b) for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]
    assert all(0 <= b.y1 <= loud.bbox.height for b in boxes)  # inside the picture, not cut off at its top


# ---------------------------------------------------------------------------------------------- player and links


def _cuts(tmp_path: Path) -> tuple[Path, CutDecisions]:
    """cuts.json found on the first recording (times on its own timeline; the fixture master keeps it from 9 s on)."""
    cands = (
        Candidate("pause-0005000", "pause", 5.0, 7.5, "cut", 0.9, "so the", "paper says", ""),
        Candidate("hesitation-0020000", "hesitation", 20.0, 20.4, "propose", 0.72, "we", "looked", "uh"),
        Candidate("retake-0030000", "retake", 30.0, 31.2, "propose", 0.5, "and", "the results", "the the"),
        Candidate("hesitation-0035000", "hesitation", 35.0, 35.3, "mute", 0.61, "I", "think", "um"),
    )
    path = write_cuts(tmp_path / "cuts.json", Cuts("lara.flac", 41.0, cands, 0.8, 0.7))
    decisions = CutDecisions(accept=("hesitation-0020000",), reject=("retake-0030000",),
                             cut=(OwnCut(start=38.0, end=39.0, note="cough"),))  # fmt: skip
    return path, decisions


def test_every_time_on_the_page_is_a_link_that_plays_the_episode_from_there(tmp_path: Path) -> None:
    path, decisions = _cuts(tmp_path)
    # The recordings laid end to end: the first kept from 0 s (at 9 s in the episode), the second from its 41st second.
    pieces = (TimelineSegment("part-1", 9.0, 50.0, 0.0), TimelineSegment("part-2", 50.0, 80.0, 41.0))
    rep = report.write_report(
        dataclasses.replace(_master(tmp_path), pieces=pieces), tmp_path / "report.html", title="t", target_lufs=-16.0,
        ceiling_dbtp=-1.0,
        curves=report.load_curves(_curves(tmp_path)), words=report.load_words(_words(tmp_path)),
        chapters=(ChapterMark("Welcome", 9.0, 40.0), ChapterMark("Findings", 40.0, 80.0)),
        glossary=("Lingard", "KeyLIME"), cuts=read_cuts(path), cut_decisions=decisions, figures=tmp_path / "r.json",
    )  # fmt: skip
    doc = lxml.html.fromstring(rep.html.read_text("utf-8"))
    links = doc.xpath("//a[@class='ts']")
    assert len(links) == 4 + 2 + 3 + 1 + 5  # the parts and chapters, unsure words, a term, cuts
    for a in links:
        t = float(a.get("data-start"))
        assert a.get("href") == f"ep-9.mp3#t={t:.1f}"  # a media fragment (temporal, in seconds): works without script
        assert a.text_content() == timecode.hms(t)
    # No clock time on the page that is not a link (lengths are written as lengths).
    clocks = [el for el in doc.iter() if el.text and re.fullmatch(r"\d\d:\d\d:\d\d", el.text.strip())]
    assert clocks and all(el.tag == "a" and el.get("class") == "ts" for el in clocks)
    # The cut candidates, on the published timeline (9 s + their time in the recording), with what was decided.
    table = next(t for t in _tables(doc) if t[0][:2] == ["time", "kind"])
    assert [r[:3] + r[4:6] for r in table[1:]] == [
        ["00:00:14", "pause", "2.5 s", "90 %", "cut automatically"],
        ["00:00:29", "hesitation", "0.4 s", "72 %", "cut: accepted by the producer"],
        ["00:00:39", "retake", "1.2 s", "50 %", "kept: rejected by the producer"],
        ["00:00:44", "hesitation", "0.3 s", "61 %", "muted with room tone"],
        ["00:00:47", "own cut", "1.0 s", "", "cut: the producer's own"],
    ]
    assert table[2][3] == "we uh looked"
    assert dict(rep.rows())["Cut candidates"] == "5: 3 cut, 1 muted, 0 waiting for a decision"
    assert report.Report.load(tmp_path / "r.json").cuts == rep.cuts


# ------------------------------------------------------------------------------------------------ multitrack


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> report.Report:
    """The committed multitrack demo (configs/raw/multitrack-demo: three tracks, one a speaker) mastered for real and
    its report written by the pipeline."""
    from keylime_prod.pipeline import run_episode

    build = tmp_path_factory.mktemp("report-mt")
    result = run_episode(load_settings(REPO / "configs", build_root=build), "multitrack-demo", upto="report")
    rep: report.Report = result.artefacts["report"]
    return rep


def test_multitrack_report_lists_each_track_never_the_internal_mix(demo: report.Report) -> None:
    master = Master.load(demo.html.parent / "master.json")
    episode = load_episode(REPO / "configs", "multitrack-demo")
    page = demo.html.read_text("utf-8")
    assert "session-mix" not in page and demo.parts == ()
    doc = lxml.html.fromstring(page)
    (table,) = [t for t in _tables(doc) if t[0][0] == "" and len(t[0]) == len(episode.tracks) + 1]
    rows = {r[0]: r[1:] for r in table}
    # One column per track: its speaker, the file as the producer named it in the episode config.
    assert table[0][1:] == [t.speaker for t in episode.tracks]
    assert rows["file"] == [Path(t.file).name for t in episode.tracks]
    for i, t in enumerate(master.tracks):
        assert rows["starts, from the first track"][i] == labels.number(t.offset_s * 1000, 0, "ms", signed=True)
        assert rows["speech before its gain"][i] == f"{t.speech_lufs:.1f} LUFS"
        assert rows["other speakers' voices (bleed) turned down by"][i] == f"{t.bleed_reduction_db:.1f} dB"
        found = rows["how the start was found"][i]
        assert found.startswith("the reference") if i == 0 else f"sure: match {t.confidence:.0f}" in found
    assert [o for o in rows["starts, from the first track"]] == ["0 ms", "+350 ms", "-220 ms"]  # the script's offsets
    assert report.SURE_MATCH == align.MIN_CONFIDENCE
    # Every figure a track records has a plain label.
    assert {k for t in master.tracks for k in t.processing if k != "leveler"} <= set(labels.FIGURES)
    # The mix's peak over 0 dBTP is explained as the tracks added together, not clipping.
    assert master.input_loudness.true_peak_dbtp > 0
    text = _body_text(page)
    assert report.SUMMED_PEAK_NOTE in text and "not clipping" in dict(demo.rows())["Peak"]
    # Steps done per track (leveler, noise reduction) are not reported again for the mix ("stretches 0").
    assert set(demo.processing) == {"limiter", "codec calibration"} and "stretches" not in text


def test_each_tracks_level_in_the_episode_is_what_ffmpeg_measures_over_its_speaker(demo: report.Report) -> None:
    """The report's "speech in the episode" per track is the curve over the track's own turns; ffmpeg's ebur128
    meter over the same turns of the published MP3 gives the same level."""
    master = Master.load(demo.html.parent / "master.json")
    ff_m, ff_s = ebur128_curves(master.mp3)
    import numpy as np

    theirs = report.Curves(HOP, np.array(ff_m), np.array(ff_s), np.array(ff_m), np.array(ff_s))
    for t, shown in zip(master.tracks, demo.tracks, strict=True):
        spans = sorted((master.body_to_episode(a), master.body_to_episode(b)) for a, b in t.regions)
        want = report._span_loudness(theirs, spans)
        assert want is not None and shown.after_lufs is not None
        assert abs(shown.after_lufs - want) <= 0.5, (t.speaker, shown.after_lufs, want)
        assert abs(shown.after_lufs - demo.target_lufs) <= 2.0  # levelled: each speaker near the target


# --------------------------------------------------------------------------------------------- phone and desktop

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian's chromium package)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (the review extra)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def full_page(demo: report.Report, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's report with every section filled: the real master and curves, words, chapters and cuts."""
    folder = tmp_path_factory.mktemp("report-page")
    master = Master.load(demo.html.parent / "master.json")
    shutil.copy(master.mp3, folder / master.mp3.name)
    master = dataclasses.replace(master, mp3=folder / master.mp3.name)
    path, decisions = _cuts(folder)
    rep = report.write_report(
        master, folder / "report.html", title="Multitrack demo: three rooms, one conversation", target_lufs=-16.0,
        ceiling_dbtp=-1.0, curves=report.load_curves(demo.html.parent / "loudness.json"),
        words=report.load_words(_words(folder)),
        chapters=(ChapterMark("Welcome", 0.0, 20.0), ChapterMark("The paper", 20.0, 45.0),
                  ChapterMark("What it means for teachers", 45.0, master.duration)),
        glossary=("Lingard", "KeyLIME"), cuts=read_cuts(path), cut_decisions=decisions,
    )  # fmt: skip
    return rep.html


def _a_later_time(page: Any) -> Any:
    """The link of the first unsure word (70 s into the fixture's words: well away from where the player starts)."""
    link = page.locator("a.ts[data-start]").filter(has_text="00:01:10").first
    assert float(link.get_attribute("data-start") or "nan") == 70.0
    return link


@pytest.mark.parametrize("width", [375, 1280])
def test_page_fits_a_phone_and_a_desktop_and_its_times_seek_the_player(
    browser: object, full_page: Path, width: int
) -> None:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    page = browser.new_page(viewport={"width": width, "height": 800})
    page.goto(full_page.as_uri())
    page.wait_for_load_state("load")
    # Nothing wider than the screen: the page never scrolls sideways.
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert scroll <= inner, (scroll, inner)
    # Plots scale to the column, and a phone gets the plot drawn for it (about its own size, text legible).
    imgs = page.evaluate(
        "[...document.images].map(i => [i.getBoundingClientRect().left, i.getBoundingClientRect().right,"
        " i.naturalWidth, i.currentSrc.length > 0])"
    )
    assert len(imgs) == 2
    for left, right, natural, loaded in imgs:
        assert loaded and left >= 0 and right <= inner
        assert natural == (
            int(report.PHONE_SIZE[0] * 96) if width <= report.PHONE_MAX_PX else int(report.WIDE_SIZE[0] * 96)
        )
    # Tables stay in their own box, which scrolls when a table is wider (the tracks table, on a phone).
    boxes = page.evaluate(
        "[...document.querySelectorAll('.scroll')].map(d => [d.getBoundingClientRect().right, d.scrollWidth,"
        " d.clientWidth, getComputedStyle(d).overflowX])"
    )
    assert boxes and all(right <= inner and overflow == "auto" for right, _, _, overflow in boxes)
    if width == 375:
        assert any(sw > cw for _, sw, cw, _ in boxes)  # at least one table scrolls inside its box
    # Clicking a time seeks the player there (and stays on the page).
    link = _a_later_time(page)
    want = float(link.get_attribute("data-start") or "nan")
    link.click()
    page.wait_for_function(f"Math.abs(document.getElementById('player').currentTime - {want}) < 0.5", timeout=10000)
    assert page.url == full_page.as_uri()
    page.close()


def test_a_time_link_plays_from_there_without_script(browser: object, full_page: Path) -> None:
    """The link is a media fragment URL (W3C Media Fragments URI 1.0, #t=seconds): with script off, following it
    opens the MP3 in the browser's own player at that time."""
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(full_page.as_uri())
    link = _a_later_time(page)
    want = float(link.get_attribute("data-start") or "nan")
    link.click()
    page.wait_for_url("**.mp3#t=*")
    page.wait_for_function(f"(() => {{ const v = document.querySelector('video');"
                           f" return v && Math.abs(v.currentTime - {want}) < 0.5; }})()", timeout=10000)  # fmt: skip
    context.close()


# ----------------------------------------------------------------------------------------------------- publishing


def test_report_is_uploaded_only_when_the_show_asks(
    s3_server: RcloneS3, make_release: Callable[..., publish.Release], tmp_path: Path
) -> None:
    """[report] publish (default false): the producer's report, with the recogniser's least-sure words and the master's
    internal figures, is not in the bucket or the manifest unless the show says so."""
    release = make_release()
    rep = _write(tmp_path, _master(tmp_path))
    release = dataclasses.replace(release, files=(*release.files, publish.EpisodeFile("report", rep.html, "html")))
    raw = raw_client(s3_server.endpoint_url)

    def keys() -> list[str]:
        return [o["Key"] for o in raw.list_objects_v2(Bucket=BUCKET).get("Contents", [])]

    show = make_show(storage_settings(s3_server.endpoint_url))
    assert show.report.publish is False
    done = publish.publish([release], show, now=dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc))
    assert "report" not in {f.role for f in done.episodes[0].files}
    assert not [k for k in keys() if "report" in k]
    manifest = json.loads(raw.get_object(Bucket=BUCKET, Key="podcast/episodes/ep-1/manifest.json")["Body"].read())
    assert "report" not in {f["role"] for f in manifest["files"]}

    asks = show.model_copy(update={"report": ReportSettings(publish=True)})
    done = publish.publish([release], asks, now=dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc))
    (up,) = [f for f in done.episodes[0].files if f.role == "report"]
    assert up.key in keys() and get_sha256(raw, up.key) == (rep.html.stat().st_size, sha256_file(rep.html))


def test_a_voice_nobody_named_is_asked_for_by_name(tmp_path: Path) -> None:
    """Words the speakers stage could not name ("Speaker 2": no enrolled sample, more voices than guests) are listed
    for the producer to name, with where to write the name; named speakers are not."""
    master = _master(tmp_path)
    words = json.loads(_words(tmp_path).read_text("utf-8"))["words"]
    for w in words[3:]:
        w["speaker"] = "Speaker 2"
    path = tmp_path / "words.json"
    path.write_text(json.dumps({"words": words}))
    rep = report.write_report(
        master, tmp_path / "report.html", title="t", target_lufs=-16.0, ceiling_dbtp=-1.0,
        curves=report.load_curves(_curves(tmp_path)), words=report.load_words(path),
    )  # fmt: skip
    rows = dict(rep.rows())
    assert "Speaker 2" in rows and "Speaker Speaker 2" not in rows and "Speaker Lara" in rows
    # Each speaker's level before mastering (the input curve over their words) beside the level after.
    lara = next(x for x in rep.speakers if x.name == "Lara")
    assert lara.before_lufs is not None and lara.after_lufs is not None
    assert rows["Speaker Lara"].startswith(f"{lara.before_lufs:.1f} LUFS before, {lara.after_lufs:.1f} LUFS in")
    ask = rows["Voices to name"]
    assert ask.startswith("Speaker 2: ") and f"configs/episodes/{master.episode_id}.speakers.toml" in ask
    page = rep.html.read_text("utf-8")
    assert "Voices to name" in page and f"{master.episode_id}.speakers.toml" in page
