"""Chapters from one source, written everywhere, checked to agree (issue 4, items 3 and 6).

The fixture timeline (support.tagging.SEGMENTS): intro 0-3 s, disclaimer 3-5 s, body 5-10 s whose first 0.25 s of raw
recording was trimmed, outro 9.5-12 s crossfaded over the end of the body.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from mutagen.id3 import ID3
from support import tagging as tf

from keylime_prod import ffmpeg
from keylime_prod.chapters import build_chapters
from keylime_prod.chapters.artefact import ChapterMark, Chapters, read_chapters_json
from keylime_prod.errors import ConfigError, TagError
from keylime_prod.notes import read_chapter_lines
from keylime_prod.tags import write_tags
from keylime_prod.tags.chapter_check import check_chapters, parse_progress_time
from keylime_prod.tags.id3 import read_chapters


@pytest.fixture(scope="module")
def pristine_mp3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tf.make_mp3(tmp_path_factory.mktemp("pristine") / "pristine.mp3")


def _setup(tmp_path: Path, pristine: Path, **kw):  # type: ignore[no-untyped-def]
    cfg = tf.write_configs(tmp_path, **kw)
    settings, episode = tf.load(cfg, tmp_path / "build")
    master = tf.make_master(tmp_path / "build" / tf.EPISODE_ID, pristine)
    return cfg, settings, episode, master


def _tagged(tmp_path: Path, pristine: Path, **kw):  # type: ignore[no-untyped-def]
    cfg, settings, episode, master = _setup(tmp_path, pristine, **kw)
    chapters = build_chapters(episode, master, settings.show.tags, images_dir=cfg / "episodes")
    tagged = write_tags(master, episode, settings.show.show, settings.show.tags, chapters=chapters)
    assert chapters.json_path is not None
    return tagged.mp3, chapters, chapters.json_path


def test_config_and_automatic_chapters_merge_on_the_episode_timeline(tmp_path: Path, pristine_mp3: Path) -> None:
    cfg, settings, episode, master = _setup(tmp_path, pristine_mp3)
    chapters = build_chapters(episode, master, settings.show.tags, images_dir=cfg / "episodes")
    body = master.body
    # "00:00" falls in the trimmed leading silence: it moves onto the body start. Later ones map with the offset.
    two, three = master.body_to_episode(2.0), master.body_to_episode(3.5)
    assert (two, three) == (body.start + 2.0 - body.source_start, body.start + 3.5 - body.source_start)
    outro = master.segment("outro")
    assert outro is not None
    expected = [
        ("Intro", 0.0, 3.0, None),
        ("Disclaimer", 3.0, body.start, None),
        ("Welcome 👋", body.start, two, None),
        ("Part two: naïve café", two, three, "https://example.org/part-two"),
        ("Part three", three, outro.start, None),  # ends where the outro starts, not at the crossfaded body end
        ("Outro", outro.start, master.duration, None),
    ]
    assert [(m.title, m.start, m.end, m.url) for m in chapters.marks] == expected

    # chapters.json: Podcasting 2.0, version 1.2.0, same numbers, unicode kept as text.
    assert chapters.json_path == master.report.parent / "chapters.json"
    raw = chapters.json_path.read_text("utf-8")
    assert "Welcome 👋" in raw
    doc = json.loads(raw)
    assert doc["version"] == "1.2.0"
    assert [(c["title"], c["startTime"], c["endTime"], c.get("url")) for c in doc["chapters"]] == expected
    assert set().union(*(c.keys() for c in doc["chapters"])) <= {"startTime", "endTime", "title", "url", "img"}

    # Show-notes lines, rounded down to the second.
    assert chapters.timestamp_lines() == (
        "(00:00:00) Intro",
        "(00:00:03) Disclaimer",
        "(00:00:05) Welcome 👋",
        "(00:00:06) Part two: naïve café",
        "(00:00:08) Part three",
        "(00:00:09) Outro",
    )


def test_body_chapter_fills_the_gap_and_automatic_titles_can_be_switched_off(
    tmp_path: Path, pristine_mp3: Path
) -> None:
    late = [{"title": "Late start", "start": "00:03"}]
    _cfg, settings, episode, master = _setup(
        tmp_path, pristine_mp3, chapters=late, tags={"intro_chapter": "", "body_chapter": "Conversation"}
    )
    marks = build_chapters(episode, master, settings.show.tags, write=False).marks
    body = master.body
    assert [m.title for m in marks] == ["Disclaimer", "Conversation", "Late start", "Outro"]
    assert marks[1].start == body.start and marks[2].start == master.body_to_episode(3.0)
    # Without configured chapters the body chapter carries the episode title.
    (tmp_path / "b").mkdir()
    _cfg2, settings2, episode2, master2 = _setup(tmp_path / "b", pristine_mp3, chapters=())
    titles = [m.title for m in build_chapters(episode2, master2, settings2.show.tags, write=False).marks]
    assert titles == ["Intro", "Disclaimer", tf.EMOJI_TITLE, "Outro"]


@pytest.mark.parametrize(
    ("start", "what"),
    [
        ("00:20", "is past the end of the body, which ends at 00:00:05 in the raw recordings"),
        ("00:04.9", "is inside the outro, which starts at 00:00:04 of the raw recordings"),
    ],
)
def test_chapter_past_the_end_is_one_line_naming_it(tmp_path: Path, pristine_mp3: Path, start: str, what: str) -> None:
    chapters = [{"title": "Intro talk", "start": "00:00"}, {"title": "Too late 🕰", "start": start}]
    _cfg, settings, episode, master = _setup(tmp_path, pristine_mp3, chapters=chapters)
    with pytest.raises(TagError) as e:
        build_chapters(episode, master, settings.show.tags)
    text = str(e.value)
    assert "\n" not in text
    assert f"chapter 2 ('Too late 🕰', start 00:00:{start[3:5]})" in text and what in text
    assert not (master.report.parent / "chapters.json").exists()  # nothing written on error


def test_out_of_order_chapters_are_a_config_error_naming_the_chapter(tmp_path: Path, pristine_mp3: Path) -> None:
    chapters = [{"title": "B", "start": "01:00"}, {"title": "A", "start": "00:30"}]
    with pytest.raises(ConfigError) as e:
        _setup(tmp_path, pristine_mp3, chapters=chapters)
    assert "chapter 2 ('A') starts at 30s, not after 60s" in str(e.value)
    assert "ep-7.toml" in str(e.value) and "\n" not in str(e.value)


def test_tagged_mp3_and_json_agree_and_ffmpeg_reads_the_same_chapters(tmp_path: Path, pristine_mp3: Path) -> None:
    mp3, chapters, json_path = _tagged(tmp_path, pristine_mp3)
    result = check_chapters(mp3, json_path)
    assert (result.count, result.max_diff_ms) == (len(chapters.marks), 0)
    assert result.duration == pytest.approx(tf.DURATION, abs=1e-3)

    # mutagen: CTOC top-level + ordered, children in order, embedded TIT2/WXXX.
    assert [(m.title, m.start, m.end, m.url) for m in read_chapters(mp3)] == [
        (m.title, m.start, m.end, m.url) for m in chapters.marks
    ]
    # ffmpeg's own ID3 parser, in file order. The ffmpeg command line shifts chapters by the start time it reports
    # (the encoder delay), clamping at zero; add it back to compare with our millisecond times.
    _, ff = ffmpeg.read_ffmetadata(mp3)
    offset_ms = round(tf.ffmpeg_start_offset(mp3) * 1000)
    assert 20 <= offset_ms <= 60
    assert [c["title"] for c in ff] == [m.title for m in chapters.marks]
    for c, m in zip(ff, chapters.marks, strict=True):
        assert c["TIMEBASE"] == "1/1000"
        want_start = round(m.start * 1000)
        assert abs(int(c["START"]) + (offset_ms if want_start else 0) - want_start) <= 1
        assert abs(int(c["END"]) + offset_ms - round(m.end * 1000)) <= 1

    # And the show notes, when given.
    notes = tmp_path / "notes.md"
    notes.write_text(
        "# Notes\n\nSome text (not a chapter).\n\n" + "\n".join(f"- {x}" for x in chapters.timestamp_lines())
    )
    assert check_chapters(mp3, json_path, notes_lines=read_chapter_lines(notes)).notes_checked
    notes.write_text("\n".join(chapters.timestamp_lines()[:-1]))
    with pytest.raises(TagError, match="chapter lines in the notes"):
        check_chapters(mp3, json_path, notes_lines=read_chapter_lines(notes), notes_where=notes)


def _edit_json(path: Path, i: int, **changes: object) -> None:
    doc = json.loads(path.read_text("utf-8"))
    doc["chapters"][i].update(changes)
    path.write_text(json.dumps(doc))


def test_disagreement_by_more_than_1_ms_fails(tmp_path: Path, pristine_mp3: Path) -> None:
    mp3, chapters, json_path = _tagged(tmp_path, pristine_mp3)
    start = chapters.marks[3].start
    _edit_json(json_path, 3, startTime=round(start + 0.001, 3))
    assert check_chapters(mp3, json_path).max_diff_ms == 1  # within tolerance
    _edit_json(json_path, 3, startTime=round(start + 0.002, 3))
    with pytest.raises(TagError, match=r"chapter 4 \('Part two: naïve café'\): start differs by 2 ms"):
        check_chapters(mp3, json_path)
    _edit_json(json_path, 3, startTime=start, title="Part 2")
    with pytest.raises(TagError, match=re.escape("title in chapters.json is 'Part 2'")):
        check_chapters(mp3, json_path)


def test_overlap_and_count_mismatch_fail(tmp_path: Path, pristine_mp3: Path) -> None:
    mp3, chapters, json_path = _tagged(tmp_path, pristine_mp3)
    _edit_json(json_path, 1, endTime=chapters.marks[2].start + 0.5)
    with pytest.raises(TagError, match=r"chapters.json chapter 2 \('Disclaimer'\) overlaps the next one"):
        check_chapters(mp3, json_path)
    doc = json.loads(json_path.read_text("utf-8"))
    doc["chapters"].pop()
    json_path.write_text(json.dumps(doc))
    with pytest.raises(TagError, match=re.escape("6 chapters in the MP3 but 5 in chapters.json")):
        check_chapters(mp3, json_path)


def test_running_past_the_end_of_the_audio_fails(tmp_path: Path, pristine_mp3: Path) -> None:
    mp3, _chapters, json_path = _tagged(tmp_path, pristine_mp3)
    tags = ID3(mp3, translate=False)
    last = tags["CHAP:chp5"]
    last.end_time += 50
    tags.save(mp3, v2_version=3, v1=0)
    with pytest.raises(TagError, match=r"ID3 chapter 6 \('Outro'\) runs past the end of the audio: ends at 12050 ms"):
        check_chapters(mp3, json_path)


def test_chapters_without_a_top_level_ctoc_are_rejected(tmp_path: Path, pristine_mp3: Path) -> None:
    mp3, _, json_path = _tagged(tmp_path, pristine_mp3)
    tags = ID3(mp3, translate=False)
    tags.delall("CTOC")
    tags.save(mp3, v2_version=3, v1=0)
    with pytest.raises(TagError, match="CHAP frames without a top-level CTOC"):
        check_chapters(mp3, json_path)


def test_json_reader_fills_missing_end_times(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps({"version": "1.2.0", "chapters": [{"startTime": 0, "title": "a"}, {"startTime": 5.5, "title": "b"}]})
    )
    marks = read_chapters_json(path)
    assert [(m.start, m.end) for m in marks] == [(0.0, 5.5), (5.5, float("inf"))]
    path.write_text(json.dumps({"version": "1.1.0", "chapters": []}))
    with pytest.raises(TagError, match=re.escape("version is '1.1.0'")):
        read_chapters_json(path)


def test_parse_progress_time_and_timestamp_lines_on_literals() -> None:
    text = "out_time_us=1000000\nprogress=continue\nout_time_us=3723500000\nout_time=01:02:03.500000\nprogress=end\n"
    assert parse_progress_time(text) == 3723.5
    marks = Chapters(
        marks=(ChapterMark("A", 0.0, 59.999), ChapterMark("B", 59.999, 3723.9), ChapterMark("C", 3723.9, 4000))
    )
    assert marks.timestamp_lines() == ("(00:00:00) A", "(00:00:59) B", "(01:02:03) C")


def test_chapters_follow_each_trimmed_part(tmp_path: Path, pristine_mp3: Path) -> None:
    # Two raw parts laid end to end (3.0 s, then 4.0 s); each lost leading silence (0.25 s and 0.4 s) in mastering,
    # so raw time and episode time differ by a different offset in each part (Master.pieces).
    import dataclasses

    from keylime_prod.audio.artefact import TimelineSegment

    chapters = [
        {"title": title, "start": start} for title, start in (("One", "00:00"), ("Two", "00:03"), ("Three", "00:04"))
    ]
    _, settings, episode, master = _setup(tmp_path, pristine_mp3, chapters=chapters)
    pieces = (
        TimelineSegment("part-1", 5.0, 7.0, source_start=0.25, sources=("a.flac",)),
        TimelineSegment("part-2", 7.0, 10.0, source_start=3.4, sources=("b.m4a",)),
    )
    master = dataclasses.replace(master, pieces=pieces)
    marks = build_chapters(episode, master, settings.show.tags, write=False).marks
    # "00:03" is the start of part 2's file, inside its trimmed silence: it lands where part 2's audio starts.
    assert [(m.title, m.start) for m in marks[2:5]] == [("One", 5.0), ("Two", 7.0), ("Three", 7.6)]
    late = [*chapters, {"title": "Gone", "start": "00:07"}]
    (tmp_path / "b").mkdir()
    _, settings, episode, master2 = _setup(tmp_path / "b", pristine_mp3, chapters=late)
    with pytest.raises(TagError, match=re.escape("is past the end of the body, which ends at 00:00:06 in the raw")):
        build_chapters(episode, dataclasses.replace(master2, pieces=pieces), settings.show.tags, write=False)
