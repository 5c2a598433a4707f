"""ID3 tags with cover art and chapters, read back with mutagen and with ffmpeg's own parser (issue 4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mutagen.id3 import ID3, TXXX, CTOCFlags, PictureType
from mutagen.id3 import ID3v1SaveOptions as V1
from support import tagging as tf

from keylime_prod import ffmpeg
from keylime_prod.chapters import build_chapters
from keylime_prod.config import load_settings
from keylime_prod.errors import TagError
from keylime_prod.guids import item_guid, podcast_guid
from keylime_prod.layout import BuildLayout
from keylime_prod.pipeline import mark_up_to_date
from keylime_prod.tags import load_tagged, write_tags
from keylime_prod.tags.artefact import Tagged
from keylime_prod.tags.chapter_check import check_chapters
from keylime_prod.tags.id3 import read_tags

TRANSCRIPT = "Welcome to the show.\nToday: failure 🎧 and what it teaches."
#: TGID is the feed's item guid (issue 11): the episode id in the show's podcast:guid namespace.
GUID = item_guid(podcast_guid("https://media.example.org/podcast/feed.xml"), tf.EPISODE_ID)


@pytest.fixture(scope="module")
def pristine_mp3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tf.make_mp3(tmp_path_factory.mktemp("pristine") / "pristine.mp3")


def _tag(tmp_path: Path, pristine: Path, *, transcript: str | None = TRANSCRIPT, **kw):  # type: ignore[no-untyped-def]
    cfg = tf.write_configs(tmp_path, **kw)
    settings, episode = tf.load(cfg, tmp_path / "build")
    master = tf.make_master(tmp_path / "build" / tf.EPISODE_ID, pristine)
    chapters = build_chapters(episode, master, settings.show.tags, images_dir=cfg / "episodes")
    assert chapters.json_path is not None
    tagged = write_tags(
        master,
        episode,
        settings.show.show,
        settings.show.tags,
        chapters=chapters,
        transcript=transcript,
        check_file=lambda p: check_chapters(p, chapters.json_path),  # type: ignore[arg-type]
    )
    return cfg, settings, episode, master, chapters, tagged


def test_id3v23_frames_read_back_with_mutagen(tmp_path: Path, pristine_mp3: Path) -> None:
    cfg, _settings, episode, _master, chapters, tagged = _tag(tmp_path, pristine_mp3)
    raw = ID3(tagged.mp3, translate=False)  # as written, no v2.3 -> v2.4 upgrade
    assert raw.version == (2, 3, 0) and tagged.id3_version == 3

    def text(key: str) -> str:
        return "/".join(str(t) for t in raw[key].text)

    assert text("TIT2") == tf.EMOJI_TITLE  # unicode and emoji kept (UTF-16 in v2.3)
    assert text("TPE1") == "Lara Varpio, Zoë Guest"
    assert text("TALB") == "Test Show ✓"
    assert text("TRCK") == "7"
    # TDRC (mutagen, TagLib, ffmpeg) and XDOR (eyeD3) carry the full date; no TDAT/TIME, which eyeD3 misreads.
    assert (text("TDRC"), read_tags(tagged.mp3).frames["XDOR"]) == ("2019-11-26 06:00:00", ["2019-11-26T06:00"])
    assert not {"TYER", "TDAT", "TIME"} & set(raw.keys())
    assert text("TCON") == "Podcast"
    assert raw.getall("COMM")[0].text == [episode.summary] and raw.getall("COMM")[0].lang == "eng"
    assert text("TCOP") == "2019 Test Network"
    assert raw.getall("WXXX")[0].url == "https://show.example.org/episodes/7"
    assert raw.getall("WOAR")[0].url == "https://show.example.org/"
    assert raw["PCST"].value == 1
    assert text("TGID") == GUID
    assert text("TDES") == episode.summary
    # WFED is a text frame (eyeD3 and TagLib read it in tests/test_id3_readers.py); mutagen needs our frame class.
    assert read_tags(tagged.mp3).frames["WFED"] == ["https://media.example.org/podcast/feed.xml"]
    assert text("TENC") == "keylime-prod" and "LAME" in text("TSSE") and "128 kbps" in text("TSSE")
    assert raw.getall("USLT")[0].text == TRANSCRIPT
    # Cover: front cover, the file's bytes exactly (never re-encoded).
    (apic,) = raw.getall("APIC")
    assert apic.type == PictureType.COVER_FRONT and apic.mime == "image/jpeg"
    assert apic.data == (cfg / "assets" / "cover.jpg").read_bytes()
    # Chapters: one CHAP per mark with an embedded TIT2 (and WXXX where a URL is given), one top-level ordered CTOC.
    (toc,) = raw.getall("CTOC")
    assert toc.flags & CTOCFlags.TOP_LEVEL and toc.flags & CTOCFlags.ORDERED
    assert toc.child_element_ids == [f"chp{i}" for i in range(len(chapters.marks))]
    for cid, m in zip(toc.child_element_ids, chapters.marks, strict=True):
        chap = raw[f"CHAP:{cid}"]
        assert (chap.start_time, chap.end_time) == (round(m.start * 1000), round(m.end * 1000))
        assert chap.sub_frames["TIT2"].text == [m.title]
        assert [w.url for w in chap.sub_frames.getall("WXXX")] == ([m.url] if m.url else [])
    # The readback helper and the stage's report agree with the file.
    back = read_tags(tagged.mp3)
    assert back.version == 3 and back.cover == apic.data and back.chapter_ids == tuple(toc.child_element_ids)
    assert set(tagged.frames) == {*raw.keys(), "XDOR"} and tagged.chapters == len(chapters.marks)  # XDOR: ours
    assert tagged.sha256 == tf.sha256(tagged.mp3) and tagged.size_bytes == tagged.mp3.stat().st_size


def test_ffmpeg_reads_the_same_tags_and_chapters(tmp_path: Path, pristine_mp3: Path) -> None:
    _, _, episode, _master, chapters, tagged = _tag(tmp_path, pristine_mp3)
    tags, chaps = ffmpeg.read_ffmetadata(tagged.mp3)  # ffmpeg's own ID3 parser, independent of mutagen
    assert tags["title"] == tf.EMOJI_TITLE
    assert tags["artist"] == "Lara Varpio, Zoë Guest"
    assert tags["album"] == "Test Show ✓"
    assert tags["album_artist"] == "Test Network"
    assert tags["track"] == "7"
    assert tags["date"] == "2019-11-26T06:00:00"  # ffmpeg reads TDRC in a v2.3 tag too
    assert tags["genre"] == "Podcast"
    assert tags["comment"] == episode.summary
    assert tags["copyright"] == "2019 Test Network"
    assert tags["encoded_by"] == "keylime-prod"
    assert tags["lyrics-eng"] == TRANSCRIPT
    assert tags["TDES"] == episode.summary
    assert tags["TGID"] == GUID
    # Chapters in chronological file order, titles intact; ffmpeg's times are shifted by its reported start.
    offset_ms = round(tf.ffmpeg_start_offset(tagged.mp3) * 1000)
    assert [c["title"] for c in chaps] == [m.title for m in chapters.marks]
    starts = [max(0, round(m.start * 1000) - offset_ms) for m in chapters.marks]
    assert all(abs(int(c["START"]) - s) <= 1 for c, s in zip(chaps, starts, strict=True))


def test_tagged_file_decodes_cleanly_to_the_same_audio(tmp_path: Path, pristine_mp3: Path) -> None:
    before = tf.decode_pcm(pristine_mp3)
    _, _, _, _master, _, tagged = _tag(tmp_path, pristine_mp3)
    assert ffmpeg.run(["-v", "error", "-i", str(tagged.mp3), "-f", "null", "-"]).stderr == b""
    after = tf.decode_pcm(tagged.mp3)
    assert len(after) == len(before) == round(tf.DURATION * 44100) * 2 * 2  # same duration, to the sample
    assert after == before  # and the same samples: tagging touched no audio
    assert tf.sha256(pristine_mp3) != tf.sha256(tagged.mp3)


def test_id3v24_by_config(tmp_path: Path, pristine_mp3: Path) -> None:
    _, _, _, _master, _, tagged = _tag(tmp_path, pristine_mp3, id3_version=4)
    raw = ID3(tagged.mp3, translate=False)
    assert raw.version == (2, 4, 0) and tagged.id3_version == 4
    assert str(raw["TDRC"].text[0]) == "2019-11-26 06:00:00" and str(raw["TDRL"].text[0]) == "2019-11-26 06:00:00"
    assert "TYER" not in raw
    tags, chaps = ffmpeg.read_ffmetadata(tagged.mp3)
    assert tags["title"] == tf.EMOJI_TITLE and tags["date"] == "2019-11-26T06:00:00" and len(chaps) == 6


def test_writing_twice_leaves_one_set_of_frames(tmp_path: Path, pristine_mp3: Path) -> None:
    _, settings, episode, master, chapters, first = _tag(tmp_path, pristine_mp3)
    frames_before = ID3(first.mp3, translate=False).keys()
    # A foreign tag left on the master by another tool: an extra TXXX and an ID3v1 trailer; neither is copied.
    foreign = ID3(first.mp3, translate=False)
    foreign.add(TXXX(encoding=3, desc="junk", text=["x"]))
    foreign.save(master.mp3, v2_version=3, v1=V1.CREATE)
    assert master.mp3.read_bytes()[-128:-125] == b"TAG"
    second = write_tags(
        master, episode, settings.show.show, settings.show.tags, chapters=chapters, transcript=TRANSCRIPT
    )
    raw = ID3(second.mp3, translate=False)
    assert sorted(raw.keys()) == sorted(frames_before)
    assert len(raw.getall("APIC")) == 1 and len(raw.getall("CTOC")) == 1 and len(raw.getall("TIT2")) == 1
    assert second.mp3.read_bytes()[-128:-125] != b"TAG"
    # Byte-identical to the first run: the tag is rebuilt from scratch, never appended to.
    assert second.sha256 == first.sha256
    assert len(ffmpeg.read_ffmetadata(second.mp3)[1]) == len(chapters.marks)


def test_failed_verification_leaves_the_mp3_untouched(tmp_path: Path, pristine_mp3: Path) -> None:
    cfg = tf.write_configs(tmp_path)
    settings, episode = tf.load(cfg, tmp_path / "build")
    master = tf.make_master(tmp_path / "build" / tf.EPISODE_ID, pristine_mp3)
    before = tf.sha256(master.mp3)

    layout = BuildLayout(master.report.parent, tf.EPISODE_ID)

    def refuse(path: Path) -> None:
        assert path != layout.tagged_mp3 and path.parent == layout.tagged_mp3.parent  # a temp file beside it
        raise TagError("verification failed on purpose", where=path)

    with pytest.raises(TagError, match="on purpose"):
        write_tags(master, episode, settings.show.show, settings.show.tags, check_file=refuse)
    assert tf.sha256(master.mp3) == before
    files = sorted(str(p.relative_to(layout.root)) for p in layout.root.rglob("*") if p.is_file())
    assert files == ["ep-7.mp3", "master.json"]


@pytest.mark.parametrize(
    ("make", "rule"),
    [
        (lambda d: tf.make_image(d / "cover.jpg", (1400, 1400), "CMYK"), "colour must be RGB, this image is CMYK"),
        (lambda d: tf.make_image(d / "cover.jpg", (600, 600)), "this is 600x600 px"),
        (lambda d: tf.make_image(d / "cover.jpg", (1400, 1400), "RGB", "PNG"), "this is PNG named .jpg"),
    ],
)
def test_bad_artwork_stops_before_the_mp3_is_touched(tmp_path: Path, pristine_mp3: Path, make, rule: str) -> None:  # type: ignore[no-untyped-def]
    cfg = tf.write_configs(tmp_path)
    make(cfg / "assets")
    settings, episode = tf.load(cfg, tmp_path / "build")
    master = tf.make_master(tmp_path / "build" / tf.EPISODE_ID, pristine_mp3)
    before = tf.sha256(master.mp3)
    with pytest.raises(TagError) as e:
        write_tags(master, episode, settings.show.show, settings.show.tags)
    assert rule in str(e.value) and "\n" not in str(e.value)
    assert tf.sha256(master.mp3) == before


def test_episode_artwork_wins_and_chapter_images_are_embedded(tmp_path: Path, pristine_mp3: Path) -> None:
    chapters = [
        {"title": "Slide", "start": "00:00", "img": "slide.jpg"},
        {"title": "Web", "start": "00:03", "img": "https://example.org/web.png"},
    ]
    cfg = tf.write_configs(tmp_path, chapters=chapters, artwork="ep-cover.png")
    ep_cover = tf.make_image(cfg / "episodes" / "ep-cover.png", (1500, 1500))
    tf.make_image(cfg / "episodes" / "slide.jpg", (640, 360))
    settings, episode = tf.load(cfg, tmp_path / "build")
    master = tf.make_master(tmp_path / "build" / tf.EPISODE_ID, pristine_mp3)
    chapters_ = build_chapters(episode, master, settings.show.tags, images_dir=cfg / "episodes")
    tagged = write_tags(master, episode, settings.show.show, settings.show.tags, chapters=chapters_)
    raw = ID3(tagged.mp3, translate=False)
    (cover,) = raw.getall("APIC")
    assert cover.mime == "image/png" and cover.data == ep_cover.read_bytes() and tagged.artwork == ep_cover.name
    slide = next(f for f in raw.getall("CHAP") if f.sub_frames["TIT2"].text == ["Slide"])
    assert slide.sub_frames.getall("APIC")[0].data == (cfg / "episodes" / "slide.jpg").read_bytes()
    doc = chapters_.json_path.read_text("utf-8") if chapters_.json_path else ""
    assert "https://example.org/web.png" in doc and "slide.jpg" not in doc  # JSON img only carries URLs


def test_no_transcript_no_uslt_and_reload(tmp_path: Path, pristine_mp3: Path) -> None:
    _, _, _, master, _, tagged = _tag(tmp_path, pristine_mp3, transcript=None)
    assert "USLT" not in {k[:4] for k in ID3(tagged.mp3, translate=False)}
    layout = BuildLayout(master.report.parent, tf.EPISODE_ID)
    assert load_tagged(layout) == tagged
    assert Tagged.load(layout.tagged_json) == tagged
    # The master keeps its own hash; an edited tagged file makes the stored result stale.
    assert tf.sha256(master.mp3) == master.audio_sha256 != tagged.sha256
    tagged.mp3.write_bytes(pristine_mp3.read_bytes())
    assert load_tagged(layout) is None


# ------------------------------------------------------------------------------------------------------ CLI


def _cli(*args: str):  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from keylime_prod.cli import app

    return CliRunner().invoke(app, list(args))


def test_pipeline_order_puts_chapters_and_tag_in_place() -> None:
    from keylime_prod.pipeline import STAGES

    names = [s.name for s in STAGES]
    assert names.index("master") < names.index("chapters") < names.index("tag")
    for earlier in ("transcribe", "notes"):
        if earlier in names:
            assert names.index(earlier) < names.index("tag")
    if "publish" in names:
        assert names.index("tag") < names.index("publish")  # the published file is the tagged one


def test_produce_tag_and_chapters_check(tmp_path: Path, pristine_mp3: Path) -> None:
    import json

    cfg = tf.write_configs(tmp_path)
    build = tmp_path / "build"
    tf.make_master(build / tf.EPISODE_ID, pristine_mp3)
    mark_up_to_date(load_settings(cfg, build), tf.EPISODE_ID, "master")  # a master made outside the pipeline
    common = ("--configs", str(cfg), "--build-dir", str(build))
    first = _cli("tag", tf.EPISODE_ID, *common, "--json")
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert [(s["name"], s["cached"]) for s in summary["stages"]] == [
        ("speakers", False),  # off for this show: nothing to find, recorded as done
        ("master", True),
        ("edit", False),  # no words heard: nothing to find or cut
        ("chapters", False),
        ("tag", False),
    ]
    assert summary["tag"]["chapters"] == 6 and summary["tag"]["id3_version"] == 3
    assert summary["tag"]["sha256"] == tf.sha256(build / tf.EPISODE_ID / "tagged" / "ep-7.mp3")
    again = json.loads(_cli("tag", tf.EPISODE_ID, *common, "--json").stdout)
    assert [s["cached"] for s in again["stages"]] == [True, True, True, True, True]
    v4 = json.loads(_cli("tag", tf.EPISODE_ID, *common, "--json", "--id3-version", "4").stdout)
    assert [s["cached"] for s in v4["stages"]] == [True, True, True, True, False] and v4["tag"]["id3_version"] == 4
    assert ID3(build / tf.EPISODE_ID / "tagged" / "ep-7.mp3", translate=False).version == (2, 4, 0)

    ok = _cli("chapters", tf.EPISODE_ID, *common, "--check")
    assert ok.exit_code == 0 and "6 chapters agree" in ok.stdout
    chapters_json = build / tf.EPISODE_ID / "chapters.json"
    doc = json.loads(chapters_json.read_text("utf-8"))
    doc["chapters"][2]["startTime"] += 0.5
    chapters_json.write_text(json.dumps(doc))
    # The stage is cached (its inputs did not change), so the edited file stays and the check catches it.
    bad = _cli("chapters", tf.EPISODE_ID, *common, "--check", "-q")
    assert bad.exit_code == 6
    assert "start differs by 500 ms" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_produce_tag_with_bad_artwork_is_one_line_exit_6(tmp_path: Path, pristine_mp3: Path) -> None:
    cfg = tf.write_configs(tmp_path)
    tf.make_image(cfg / "assets" / "cover.jpg", (1400, 1400), "RGBA", "PNG")
    build = tmp_path / "build"
    master = tf.make_master(build / tf.EPISODE_ID, pristine_mp3)
    mark_up_to_date(load_settings(cfg, build), tf.EPISODE_ID, "master")
    result = _cli("tag", tf.EPISODE_ID, "--configs", str(cfg), "--build-dir", str(build), "-q")
    assert result.exit_code == 6
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "cover.jpg" in line and "this is PNG named .jpg" in line
    assert tf.sha256(master.mp3) == master.audio_sha256  # untouched


# ------------------------------------------------------------------------------------------------------ demo


def test_demo_episode_258_master_then_tag(tmp_path: Path) -> None:
    """The real demo build: `produce master episode-258`, then `produce tag episode-258`, checked independently."""
    import hashlib
    import json

    from keylime_prod.audio.artefact import Master
    from keylime_prod.config import load_episode
    from keylime_prod.tags import check_artwork

    repo = Path(__file__).resolve().parent.parent
    configs = repo / "configs"
    inputs = sorted(p for p in (configs / "raw" / "episode-258").iterdir() if p.is_file()) + sorted(
        p for p in (configs / "assets").iterdir() if p.suffix in (".jpg", ".mp3", ".flac", ".ogg")
    )
    before = {p: tf.sha256(p) for p in inputs}
    common = ("--configs", str(configs), "--build-dir", str(tmp_path))
    assert _cli("master", "episode-258", *common, "-q").exit_code == 0
    build = tmp_path / "episode-258"
    master = Master.load(build / "master.json")
    untagged_pcm = hashlib.sha256(tf.decode_pcm(master.mp3)).hexdigest()

    result = _cli("tag", "episode-258", *common, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["tag"]["chapters"] == 6

    # Chapters: intro, the three configured ones mapped from raw time, disclaimer and outro, in time order.
    episode = load_episode(configs, "episode-258")
    doc = json.loads((build / "chapters.json").read_text("utf-8"))
    titles = [c["title"] for c in doc["chapters"]]
    assert titles == ["Intro", *(c.title for c in episode.chapters), "Disclaimer", "Outro"]
    for c, ch in zip(doc["chapters"][1:4], episode.chapters, strict=True):
        want = max(master.body.start, master.body_to_episode(ch.start))
        assert abs(c["startTime"] - want) <= 0.001
    assert doc["chapters"][1]["startTime"] == master.body.start
    disclaimer, outro = master.segment("disclaimer"), master.segment("outro")
    assert disclaimer is not None and outro is not None
    assert abs(doc["chapters"][4]["startTime"] - disclaimer.start) <= 0.001
    assert abs(doc["chapters"][5]["startTime"] - outro.start) <= 0.001
    assert doc["chapters"][-1]["endTime"] <= master.duration

    tagged_mp3 = build / "tagged" / "episode-258.mp3"
    # ffmpeg's reader sees the same chapters and tags; the file decodes cleanly to the very same audio.
    tags, chaps = ffmpeg.read_ffmetadata(tagged_mp3)
    assert tags["title"] == episode.title and tags["genre"] == "Podcast" and tags["track"] == "258"
    assert [c["title"] for c in chaps] == titles
    offset_ms = round(tf.ffmpeg_start_offset(tagged_mp3) * 1000)
    for c, j in zip(chaps[1:], doc["chapters"][1:], strict=True):
        assert abs(int(c["START"]) + offset_ms - round(j["startTime"] * 1000)) <= 1
    assert hashlib.sha256(tf.decode_pcm(tagged_mp3)).hexdigest() == untagged_pcm
    assert check_chapters(tagged_mp3, build / "chapters.json").duration == pytest.approx(master.duration, abs=0.001)

    # The cover is the demo artwork, checked and embedded byte for byte.
    cover = check_artwork(configs / "assets" / "cover.jpg")
    assert (cover.width, cover.height) == (3000, 3000)
    assert read_tags(tagged_mp3).cover == cover.data
    assert {p: tf.sha256(p) for p in inputs} == before  # raw inputs never modified
