"""The stages in flow order, in one literal tuple, and the adapters that call each stage's one plain function.

Like beets' ``ImportSession.run()`` and yt-dlp's ``run_all_pps``, :data:`STAGES` is the one place that shows the
whole order. Each adapter collects its stage's inputs from the settings and from earlier artefacts, read through
:class:`~.runner.Run`'s typed accessors, so stages never import each other; :mod:`.runner` owns the loop, logging,
timing, skip-if-cached and resume.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import audio, chapters, edit, fsutil, notes, publish, report, speakers, tags, transcript
from ..audio.artefact import Master
from ..chapters.artefact import ChapterMark, Chapters
from ..config import (
    Corrections,
    Settings,
    corrections_path,
    cut_decisions_path,
    load_corrections,
    load_cut_decisions,
    load_speaker_names,
    speakers_path,
)
from ..edit.artefact import CutMap, Edited, read_cuts
from ..errors import PublishError
from ..layout import BuildLayout
from ..notes.artefact import Notes
from ..speakers.artefact import Turns
from ..tags import chapter_check
from ..tags.artefact import Tagged
from ..transcript import weights
from ..transcript.artefact import Transcript
from .runner import Run, Stage

log = logging.getLogger(__name__)


def digest(*parts: Any) -> str:
    """A stable SHA-256 of JSON-serialisable parts (paths and other objects by ``str``)."""
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=True).encode()
    return hashlib.sha256(blob).hexdigest()


def portable(run: Run, value: Any) -> Any:
    """``value`` (a config dump) with every path inside the project folder (the configs folder's parent) or the
    build folder written relative to it: a key holds what the output depends on, and a project moved or cloned to
    another folder depends on the same files. Paths elsewhere stay as they are; the files' contents are hashed
    separately (:func:`file_digest`)."""
    roots = sorted(
        ((f"<{name}>", Path(root).absolute()) for name, root in
         (("build", run.settings.build_root), ("project", run.settings.configs_dir.parent))),
        key=lambda r: len(str(r[1])), reverse=True,
    )  # fmt: skip

    def one(v: Any) -> Any:
        if isinstance(v, (Path, str)) and Path(v).is_absolute():
            for name, root in roots:
                if Path(v).is_relative_to(root):
                    return f"{name}/{Path(v).relative_to(root).as_posix()}"
            return str(v) if isinstance(v, Path) else v
        if isinstance(v, dict):
            return {k: one(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [one(x) for x in v]
        return v

    return one(value)


def file_digest(path: Path | None) -> str | None:
    """Content hash of an input file (``None`` stays ``None``; a missing file hashes as ``missing``)."""
    if path is None:
        return None
    try:
        return fsutil.sha256_file(path)
    except OSError:
        return "missing"


# ------------------------------------------------------------------------------------------------ stage adapters


def _diarized(run: Run) -> bool:
    # Who speaks when is found in a recording of several people: not in [[tracks]] (each track names its speaker),
    # not in a kept archive master, and only where the show asks for it.
    return run.settings.show.speakers.diarize and not run.episode.tracks and not _kept(run)


def _speakers_key(run: Run) -> str:
    s = run.settings.show.speakers
    if not _diarized(run):
        return digest("speakers-off/1")
    return digest(
        "speakers/1",
        [file_digest(p) for p in run.episode.recordings],
        s.model_dump(mode="json", exclude={"voices"}),
        {name: file_digest(p) for name, p in sorted(s.voices.items())},
    )


def _speakers_run(run: Run) -> Turns:
    if not _diarized(run):
        return Turns()
    return speakers.diarize(
        run.episode.recordings, run.settings.show.speakers, run.layout.turns_json, progress=run.progress
    )


def _speakers_load(run: Run) -> Turns | None:
    if not _diarized(run):
        return Turns()
    return speakers.read_turns(run.layout.turns_json) if run.layout.turns_json.is_file() else None


def _turns(run: Run) -> Turns:
    return run.get(Turns) or Turns()


def _master_key(run: Run) -> str:
    s = run.settings.show
    if _kept(run):
        # /2: the kept master writes loudness.json too, so builds kept before it are kept again (a copy and a measure).
        return digest(
            "master-kept/2", [file_digest(p) for p in run.episode.recordings], s.audio.target_lufs, s.audio.true_peak_db
        )
    turns = _turns(run) if run.settings.show.speakers.level_speakers else Turns()
    return digest(
        "master/1",
        *([[(t.label, t.start, t.end) for t in turns.turns]] if turns.found else []),
        [file_digest(p) for p in run.episode.recordings],
        [(file_digest(t.file), t.speaker, t.offset) for t in run.episode.tracks],
        {k: file_digest(v) for k, v in s.assets.model_dump().items()},
        portable(run, s.audio.model_dump()),
    )


def _kept(run: Run) -> bool:
    # An archive episode keeps its published MP3 as the master unless its config says remaster.
    return run.episode.archive is not None and not run.episode.archive.remaster


def _master_run(run: Run) -> Master:
    s = run.settings.show
    if _kept(run):
        return audio.keep_master(run.episode, s.audio, run.layout.root, progress=run.progress)
    if run.episode.tracks:
        return audio.master_tracks(run.episode, s.audio, s.assets, run.layout.root, progress=run.progress)
    turns = _turns(run) if s.speakers.level_speakers else Turns()
    voices = tuple((t.label, t.start, t.end) for t in turns.turns)
    return audio.master(run.episode, s.audio, s.assets, run.layout.root, progress=run.progress, speakers=voices)


def _master_load(run: Run) -> Master | None:
    if not run.layout.master_json.is_file():
        return None
    if _kept(run) and not run.layout.loudness_json.is_file():
        # The report's curves are part of a kept master and cost only a measure of the MP3 to make again (a full
        # master is not redone for them: its report says what is missing instead).
        return None
    m = Master.load(run.layout.master_json)
    return m if _unchanged(m.mp3, m.audio_sha256) else None


def _unchanged(path: Path, sha256: str) -> bool:
    """Whether an output still is what its stage wrote (its recorded hash): a file truncated or edited by hand is
    made again, never taken as cached."""
    if not path.is_file():
        return False
    if fsutil.sha256_file(path) != sha256:
        log.warning("%s changed since it was written (edited or truncated): making it again", path)
        return False
    return True


def _episodes_dir(run: Run) -> Path:
    return run.settings.configs_dir / "episodes"


def _chapter_image_digests(run: Run) -> list[str | None]:
    # Local chapter images resolve against the episodes folder (chapters.build_chapters does the same).
    return [
        file_digest(_episodes_dir(run) / c.img)
        for c in run.episode.chapters
        if c.img and not c.img.startswith(("http://", "https://"))
    ]


def _chapters_key(run: Run) -> str:
    master = _cut_master(run)
    return digest(
        "chapters/1",
        master.to_json(),
        run.episode.title,
        [c.model_dump() for c in run.episode.chapters],
        _chapter_image_digests(run),
        run.settings.show.tags.model_dump(
            include={"intro_chapter", "disclaimer_chapter", "outro_chapter", "body_chapter"}
        ),
    )


def _chapters_run(run: Run) -> Chapters:
    s = run.settings.show
    return chapters.build_chapters(run.episode, _cut_master(run), s.tags, run.layout, images_dir=_episodes_dir(run))


def _chapters_load(run: Run) -> Chapters | None:
    # chapters.json does not carry local chapter images (they are embedded in ID3 only), so the marks are rebuilt
    # from master.json and the config; the tag stage's check then proves they still agree with the file.
    master = _cut_master(run) if run.get(Master) is not None else None
    if master is None or not run.layout.chapters_json.is_file():
        return None
    s = run.settings.show
    return chapters.build_chapters(run.episode, master, s.tags, run.layout, images_dir=_episodes_dir(run), write=False)


def _transcript_text(run: Run) -> str | None:
    # The transcript is optional for tagging: USLT is written when the transcribe stage exists and has run.
    t = run.transcript()
    return t.text if t is not None else None


def _tag_key(run: Run) -> str:
    master = _cut_master(run)
    marks = run.need(Chapters)
    s = run.settings.show
    return digest(
        "tag/2",  # 2: WFED as a text frame, TGID the feed's item guid
        master.audio_sha256,
        master.duration,
        portable(run, run.episode.model_dump()),
        portable(run, s.show.model_dump()),
        portable(run, s.tags.model_dump()),
        s.feed.podcast_guid,
        file_digest(run.episode.artwork or s.show.artwork),
        [(m.title, m.start, m.end, m.url, m.img) for m in marks.marks],
        _chapter_image_digests(run),
        digest(_transcript_text(run)),
    )


def _tag_run(run: Run) -> Tagged:
    s = run.settings.show
    marks = run.need(Chapters)
    json_path = marks.json_path or run.layout.chapters_json

    def chapters_match(tmp: Path) -> None:
        # The tagged temp file must agree with chapters.json before it replaces the MP3. The notes
        # get the same Chapters artefact (their key holds the marks), so they need no check against the file.
        chapter_check.check_chapters(tmp, json_path)

    return tags.write_tags(
        _cut_master(run), run.episode, s.show, s.tags, run.layout, chapters=marks,
        transcript=_transcript_text(run), check_file=chapters_match, show_guid=s.feed.podcast_guid,
    )  # fmt: skip


def check_episode_chapters(
    settings: Settings, episode_id: str, notes_path: Path | None = None
) -> chapter_check.ChapterCheck:
    """``produce chapters --check``: the tagged MP3, ``chapters.json`` and the show notes' chapter lines agree."""
    layout = settings.layout(episode_id)
    path = notes_path or (layout.notes_md if layout.notes_md.is_file() else None)
    lines = notes.read_chapter_lines(path) if path else None
    return chapter_check.check_build(layout, notes_lines=lines, notes_where=path)


def _tag_load(run: Run) -> Tagged | None:
    return tags.load_tagged(run.layout)


def _speaker(run: Run) -> str:
    # WebVTT <v> tags and Podcasting 2.0 "speaker": the episode's (first) host by default.
    return run.episode.hosts[0].name


def _glossary(run: Run) -> list[str]:
    # The episode's own words (glossary, people, authors, titles); the show-level glossary comes with the settings.
    return transcript.episode_hints(run.episode, run.settings.show.show.hosts)


def _transcript_page(run: Run) -> transcript.Page:
    # The web page's header and player: locally the MP3 beside it (the publish stage maps names to URLs).
    ep, show = run.episode, run.settings.show.show
    master = _cut_master(run)
    return transcript.Page(
        title=ep.title, show=show.title, number=ep.number, date=ep.publish_date.date(),
        link=ep.link or show.website, audio=master.mp3.name,
    )  # fmt: skip


def _recognise_key(run: Run) -> str:
    # What the recogniser hears depends on the audio, the engine, the model and the hints only: a new title, date or
    # number, or a correction, never runs it again (they are rendered by the transcribe stage). Threads do not change
    # output.
    s = run.settings.show
    master = run.master()
    return digest(
        "recognise/1",
        master.audio_sha256,
        [(seg.name, seg.start, seg.end) for seg in master.segments],
        portable(run, s.whisper.model_dump(mode="json", exclude={"threads"})),
        _glossary(run),
        _speaker(run),
        run.episode.speakers,
        # A multitrack episode is transcribed from its tracks, where the mix placed each speaker's speech.
        [(file_digest(t.file), t.speaker) for t in run.episode.tracks],
        [(t.start_s, t.regions) for t in master.tracks],
        s.show.disclaimer_text,
    )


def _recognise_run(run: Run) -> transcript.Heard:
    s = run.settings.show
    heard = transcript.recognise(
        run.master(),
        s.whisper,
        speaker=_speaker(run),
        speakers=run.episode.speakers,
        glossary=_glossary(run),
        disclaimer_text=s.show.disclaimer_text,
        tracks=[t.file for t in run.episode.tracks],
        cache_dir=weights.default_cache_dir(),
        progress=run.progress,
    )
    heard.save(run.layout.heard_json)
    return heard


def _recognise_load(run: Run) -> transcript.Heard | None:
    return transcript.Heard.load(run.layout.heard_json) if run.layout.heard_json.is_file() else None


def _decisions_file(run: Run) -> Path:
    return cut_decisions_path(run.settings.configs_dir, run.episode.id)


def _edit_key(run: Run) -> str:
    # The master, the words Whisper heard on it, [edit] and the producer's decisions file: accepting a cut edits the
    # master again (and everything after it) without running Whisper again.
    master = run.master()
    return digest(
        "edit/1",
        master.audio_sha256,
        [(seg.name, seg.start, seg.end) for seg in master.segments],
        None if _kept(run) else file_digest(run.layout.heard_json),
        run.settings.show.edit.model_dump(mode="json"),
        file_digest(_decisions_file(run)),
    )


def _edit_run(run: Run) -> Edited:
    # An archive episode's kept MP3 is published as it was: nothing is cut in it. Without a transcript there are no
    # words to find cuts by (tagging alone never starts a transcription), so nothing is cut either.
    heard = None if _kept(run) else run.get(transcript.Heard)
    path = _decisions_file(run)
    return edit.edit_master(
        run.master(), heard.words if heard is not None else None, run.settings.show.edit, load_cut_decisions(path),
        run.layout, decisions_file=path,
    )  # fmt: skip


def _edit_load(run: Run) -> Edited | None:
    if not run.layout.edit_json.is_file():
        return None
    e = Edited.load(run.layout.edit_json)
    return e if _unchanged(e.master.mp3, e.master.audio_sha256) else None


def _cut_master(run: Run) -> Master:
    """The master as published: with the edit's cuts applied (the master itself before the edit stage has run)."""
    e = run.get(Edited)
    return e.master if e is not None else run.master()


def _cut_map(run: Run) -> CutMap:
    e = run.get(Edited)
    return e.map if e is not None else CutMap()


def _cut_heard(run: Run) -> transcript.Heard:
    """What Whisper heard on the master, moved onto the cut master's timeline through the one cut map: words in a
    cut or muted stretch are gone (a hesitation written as "uh" leaves the text with its sound)."""
    heard, m = run.need(transcript.Heard), _cut_map(run)
    if not m.cuts and not m.muted:
        return heard
    words = tuple(
        replace(w, start=round(m.time(w.start), 3), end=round(m.time(w.end), 3))
        for w in heard.words
        if m.keeps(w.start, w.end)
    )
    return replace(heard, words=words)


def _corrections(run: Run) -> Corrections:
    return load_corrections(run.settings.configs_dir, run.episode.id)


def _naming(run: Run) -> speakers.Naming:
    # Who each voice found is: enrolled hosts by voice, the guests when as many voices are left, the producer's
    # [names] in <id>.speakers.toml last. Cheap: a new name never finds the voices or runs Whisper again.
    names = load_speaker_names(run.settings.configs_dir, run.episode.id).names
    return speakers.names_of(_turns(run), [g.name for g in run.episode.guests], names)


def _speaker_turns(run: Run) -> tuple[tuple[str, float, float], ...]:
    """The voices' turns, named, on the published timeline (the cut master's, through the edit's cut map, as the
    words are; empty when the recording was not diarized)."""
    turns = _turns(run)
    if not turns.found:
        return ()
    master, names, m = run.master(), _naming(run).names, _cut_map(run)
    out = []
    for t in turns.turns:
        a, b = m.time(master.body_to_episode(t.start)), m.time(master.body_to_episode(t.end))
        if b > a:
            out.append((names.get(t.label, t.label), round(a, 3), round(b, 3)))
    return tuple(out)


def _speaker_names(run: Run) -> dict[str, str]:
    # configs/episodes/<id>.speakers.toml (docs/review.md): the person behind each label the recogniser wrote.
    return load_speaker_names(run.settings.configs_dir, run.episode.id).names


def _named(run: Run, heard: transcript.Heard) -> transcript.Heard:
    """``heard`` with each speaker label replaced by its name from the speakers file (heard.json keeps the labels)."""
    names = _speaker_names(run)
    if not names:
        return heard
    words = tuple(replace(w, speaker=names.get(w.speaker, w.speaker) if w.speaker else w.speaker) for w in heard.words)
    return replace(heard, words=words)


def _transcribe_key(run: Run) -> str:
    # The cheap step: the heard words, the producer's corrections and the page's header make every transcript file.
    names = _speaker_names(run)
    turns = _speaker_turns(run)
    return digest(
        "transcribe/3",  # 3: rendered from heard.json with the corrections; cues without orphans
        file_digest(run.layout.heard_json),
        [_cut_map(run).cuts, _cut_map(run).muted],
        _corrections(run).model_dump(mode="json"),
        _transcript_page(run),
        _known_terms(run),
        # Only when there are names or turns, so builds made before the speakers file existed stay cached.
        *([names] if names else []),
        *([turns] if turns else []),
    )


def _transcribe_run(run: Run) -> Transcript:
    if _turns(run).found:
        naming, where = _naming(run), speakers_path(run.settings.configs_dir, run.episode.id)
        if naming.unnamed:
            log.warning(
                "%s: %s not named: listen to their turns (build/%s/turns.json) and name them under [names] in %s",
                run.episode.id, ", ".join(naming.unnamed), run.episode.id, where,
            )  # fmt: skip
        # The feed's podcast:person tags come from the episode's hosts and guests, as for [[tracks]] speakers.
        people = {p.name for p in (*run.episode.hosts, *run.episode.guests)}
        if strangers := sorted({n for lab, n in naming.names.items() if naming.how[lab] == "producer"} - people):
            log.warning(
                "%s: %s named in %s but not a host or guest of the episode: add them to [[guests]] for the feed's "
                "podcast:person", run.episode.id, ", ".join(strangers), where,
            )  # fmt: skip
    return transcript.render(
        _named(run, _cut_heard(run)),
        run.layout.transcript_dir,
        stem=run.layout.transcript_stem,
        page=_transcript_page(run),
        words_file=run.layout.words_json,
        corrections=_corrections(run),
        corrections_file=corrections_path(run.settings.configs_dir, run.episode.id),
        glossary=_known_terms(run),
        speaker_turns=_speaker_turns(run),
    )


def _transcribe_load(run: Run) -> Transcript | None:
    if not run.layout.transcript_report.is_file():
        return None
    t = Transcript.load(run.layout.transcript_report)
    return t if all(p.is_file() for p in t.files.values()) else None


def _notes_chapters(run: Run) -> Chapters | None:
    return run.chapters()


def _notes_key(run: Run) -> str:
    t = run.need(Transcript)
    return digest(
        "notes/1",
        portable(run, run.episode.model_dump(mode="json")),
        portable(run, run.settings.show.show.model_dump(mode="json")),
        file_digest(t.report),
        [(m.title, m.start, m.end, m.url) for m in getattr(_notes_chapters(run), "marks", ())],
    )


def _notes_run(
    run: Run, layout: BuildLayout | None = None, links: Mapping[str, str] | None = None, *, write: bool = True
) -> Notes:
    return notes.write_notes(
        run.episode,
        run.settings.show.show,
        layout or run.layout,
        transcript=run.need(Transcript),
        chapters=_notes_chapters(run),
        links=links,
        write=write,
    )


def _notes_load(run: Run) -> Notes | None:
    # The files say the article for people; the artefact's article is built again from the same inputs (the key
    # holds them all), never read back out of the files.
    if not (run.layout.notes_md.is_file() and run.layout.notes_html.is_file()) or run.transcript() is None:
        return None
    return _notes_run(run, write=False)


def _known_terms(run: Run) -> list[str]:
    # Every term the recogniser is given (show and episode glossaries, people, authors, the paper's title): a
    # corrected name already among them is not offered again.
    return [*run.settings.show.whisper.glossary, *_glossary(run)]


def _report_glossary(run: Run) -> list[str]:
    # The words this episode's transcript should contain: its own glossary and people (hosts and guests of this
    # episode, the paper's authors). Not the show's terms or hosts who are not in it, nor titles (long phrases read
    # out in words of their own): those are not owed to this transcript, and listing them buried real misses.
    paper = run.episode.paper
    return [h for h in transcript.episode_hints(run.episode) if paper is None or h != paper.title]


def _report_marks(run: Run) -> tuple[ChapterMark, ...]:
    ch = run.chapters()
    return tuple(ch.marks) if ch is not None else ()


def _report_cut_decisions(run: Run) -> Path:
    return cut_decisions_path(run.settings.configs_dir, run.episode.id)


def _curves_file(run: Run) -> Path:
    # The report's curves on the cut master's timeline when something was cut.
    cut = _cut_master(run).report != run.master().report and run.layout.edited_loudness_json.is_file()
    return run.layout.edited_loudness_json if cut else run.layout.loudness_json


def _report_key(run: Run) -> str:
    master = _cut_master(run)
    s = run.settings.show
    return digest(
        "report/2",
        file_digest(master.report),
        file_digest(_curves_file(run)),
        file_digest(run.layout.words_json),
        file_digest(run.layout.cuts_json),
        file_digest(_report_cut_decisions(run)),
        [(m.title, m.start) for m in _report_marks(run)],
        _report_glossary(run),
        run.episode.title,
        run.episode.speakers,
        (s.audio.target_lufs, s.audio.true_peak_db),
    )


def _report_run(run: Run, out: Path | None = None, audio: str | None = "") -> report.Report:
    # ``out``: a copy elsewhere (the published one, whose player plays the published MP3 at ``audio``), without
    # report.json; by default the build's page, playing the master beside it.
    s = run.settings.show
    layout = run.layout
    return report.write_report(
        _cut_master(run),
        out or layout.report_html,
        figures=None if out else layout.report_json,
        audio=audio,
        title=f"{run.episode.number}. {run.episode.title}",
        target_lufs=s.audio.target_lufs,
        ceiling_dbtp=s.audio.true_peak_db,
        curves=report.load_curves(_curves_file(run)),
        words=report.load_words(layout.words_json),
        chapters=_report_marks(run),
        glossary=_report_glossary(run),
        recording_speakers=run.episode.speakers,
        cuts=read_cuts(layout.cuts_json) if layout.cuts_json.is_file() else None,
        cut_decisions=load_cut_decisions(_report_cut_decisions(run)),
        cut_time=_cut_map(run).time if run.get(Edited) is not None else None,
    )


def _report_load(run: Run) -> report.Report | None:
    layout = run.layout
    if not (layout.report_json.is_file() and layout.report_html.is_file()):
        return None
    return report.Report.load(layout.report_json)


def release_of(run: Run) -> publish.Release:
    """What the build folder holds for publishing: the tagged MP3 (else the master's), the transcript files,
    chapters.json, the show notes and the cover art (the episode's own, else the show's).

    A missing optional artefact is published without (and logged), a missing master is an error.
    """
    ep = run.episode
    master = _cut_master(run) if run.get(Master) is not None else None
    if master is None or not master.mp3.is_file():
        raise PublishError(
            f"{ep.id} has not been built", where=run.layout.root, hint=f"run `produce {ep.id}` to build it first"
        )
    t, ch, n, tagged = run.transcript(), run.chapters(), run.notes(), run.tagged()
    missing = [
        name for name, art in (("transcribe", t), ("chapters", ch), ("notes", n), ("tag", tagged)) if art is None
    ]
    if missing:
        log.warning("%s: publishing without %s (run `produce %s` to make them)", ep.id, ", ".join(missing), ep.id)
    mp3 = tagged.mp3 if tagged is not None and tagged.mp3.is_file() else master.mp3
    files = [publish.EpisodeFile("audio", mp3, mp3.suffix.lstrip(".").lower())]
    language = None
    render_page = None
    if t is not None:
        language = t.language
        files += [publish.EpisodeFile("transcript", Path(p), fmt) for fmt, p in sorted(t.files.items())]
        if "html" in t.files:
            page_name, segments = Path(t.files["html"]).name, t.segments

            def render_page(links: Mapping[str, str], folder: Path) -> Path:
                page = _transcript_page(run)
                page = replace(page, audio=links.get(page.audio or "", page.audio))
                html = transcript.render_html(segments, language=language or "en", page=page)
                return fsutil.write_text(folder / "page" / page_name, html)

    marks: tuple[ChapterMark, ...] = ()
    if ch is not None:
        marks = tuple(ch.marks)
        if ch.json_path is not None:
            files.append(publish.EpisodeFile("chapters", ch.json_path, "json"))
    render = None
    if n is not None:
        files += [publish.EpisodeFile("notes", n.markdown, "md"), publish.EpisodeFile("notes", n.html, "html")]

        def render(links: Mapping[str, str], folder: Path) -> Notes:
            return _notes_run(run, BuildLayout(folder, ep.id), links)

    r = run.report()
    render_report = None
    if r is not None:
        files.append(publish.EpisodeFile("report", r.html, "html"))  # the producer's report, beside the episode
        report_name, mp3_name = r.html.name, master.mp3.name

        def render_report(links: Mapping[str, str], folder: Path) -> Path:
            # Published only with [report] publish = true: its player and time links play the published MP3.
            return _report_run(run, folder / "report" / report_name, links.get(mp3_name)).html

    cover = ep.artwork or run.settings.show.show.artwork
    files.append(publish.EpisodeFile("cover", cover, cover.suffix.lstrip(".").lower()))
    return publish.Release(
        ep, tuple(files), master.duration, transcript_language=language, chapters=marks, render_notes=render,
        render_page=render_page, render_report=render_report,
    )  # fmt: skip


def _publish_run(run: Run) -> publish.Published:
    # Never cached: the bucket is the state. A re-run finds every object verified and uploads nothing.
    return publish.publish([release_of(run)], run.settings.show, progress=run.progress)


_TRANSCRIBE_NEEDS = ("speakers", "master", "recognise", "edit")

#: The order of the whole pipeline: publishing is last, so the feed changes only after everything else.
STAGES: tuple[Stage[object], ...] = (
    # Who speaks when in the raw recording (turns.json), before mastering: the leveler evens out the speakers.
    Stage("speakers", Turns, _speakers_run, _speakers_key, _speakers_load),
    Stage("master", Master, _master_run, _master_key, _master_load, needs=("speakers",)),
    # Whisper (heard.json), then the cheap step that applies the producer's corrections and renders every format.
    Stage("recognise", transcript.Heard, _recognise_run, _recognise_key, _recognise_load, needs=("master",)),
    # Cuts found on the master's words and applied to its audio; every later stage reads the cut master and moves
    # its times through the edit's cut map (docs/editing.md).
    Stage("edit", Edited, _edit_run, _edit_key, _edit_load, needs=("master",)),
    Stage("transcribe", Transcript, _transcribe_run, _transcribe_key, _transcribe_load, needs=_TRANSCRIBE_NEEDS),
    Stage("chapters", Chapters, _chapters_run, _chapters_key, _chapters_load, needs=("master", "edit")),
    Stage("notes", Notes, _notes_run, _notes_key, _notes_load, needs=("transcribe", "chapters")),
    # The transcript (USLT) is used when it exists; tagging alone never starts a transcription.
    Stage("tag", Tagged, _tag_run, _tag_key, _tag_load, needs=("master", "edit", "chapters")),
    # Every run ends the build with the production report (cached while its inputs are unchanged). It reads the
    # chapters and words.json when they exist, but never makes a transcript just for itself.
    Stage("report", report.Report, _report_run, _report_key, _report_load, needs=("master", "edit")),
    Stage("publish", publish.Published, _publish_run, needs=("tag", "notes", "report")),
)
STAGE_BY_NAME = {s.name: s for s in STAGES}
