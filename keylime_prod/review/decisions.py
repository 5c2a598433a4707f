"""The review page's decisions, written to the episode's own edit files beside its config, never into ``build/``:

- a fixed word: one more ``[[corrections]]`` entry in ``<id>.corrections.toml`` (docs/transcripts.md,
  "Corrections");
- a cut kept or taken: its id moved between ``accept`` and ``reject`` in ``<id>.cuts.toml`` (docs/editing.md);
- a speaker renamed: ``"label" = "name"`` under ``[names]`` in ``<id>.speakers.toml`` (docs/review.md);
- a chapter moved: that chapter's ``start`` in ``<id>.toml``, on the raw recordings' timeline as the config has it.

Each writer edits only the value it changes (:mod:`.tomledit`), keeps the producer's comments and order, checks the
new file with the same model (and, for corrections and cuts, the same function) the pipeline will read it with, and
then replaces the file atomically. A decision that would not build is refused before anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import ValidationError

from .. import fsutil, timecode
from ..config import (
    Corrections,
    CutDecisions,
    SpeakerNames,
    corrections_path,
    cut_decisions_path,
    describe_validation_error,
    episode_from_text,
    episode_path,
    speakers_path,
    tomllib,
)
from ..edit import decide
from ..edit.artefact import Cuts
from ..errors import ConfigError, ReviewError
from ..transcript.artefact import TimedWord
from ..transcript.corrections import apply_corrections
from . import tomledit

log = logging.getLogger(__name__)

CutChoice = Literal["cut", "keep", "open"]

_NEW_CORRECTIONS = (
    '# What the transcript says where the recogniser heard it wrong (docs/transcripts.md, "Corrections").\n'
    "# Written by `produce review`; edit freely.\n"
)
_NEW_CUTS = "# The producer's word on the cut candidates (docs/editing.md). Written by `produce review`; edit freely.\n"
_NEW_SPEAKERS = (
    "# The person behind each speaker label of the transcript (docs/review.md). Written by `produce review`.\n"
)


def _read(path: Path) -> str:
    try:
        return path.read_text("utf-8").removeprefix("\ufeff") if path.is_file() else ""
    except (OSError, UnicodeDecodeError) as e:
        raise ReviewError(f"cannot read: {e}", where=path) from e


def _data(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}", where=path, hint="fix the file by hand first") from e


def _write(path: Path, text: str, want: dict[str, Any], fallback: bool) -> Path:
    """Write ``text`` if it reads back as ``want``; else, for a decisions file (``fallback``), the data alone
    (comments lost, said in the log); the episode config is never rewritten that way."""
    try:
        text = tomledit.checked(text, want, str(path))
    except tomledit.Unedited as e:
        if not fallback:
            raise ReviewError(
                f"cannot change this value in place ({e})", where=path, hint="make the change by hand"
            ) from e
        log.warning("%s: written again in full, its comments are lost (%s)", path, e)
        text = tomli_w.dumps(want)
    path.parent.mkdir(parents=True, exist_ok=True)
    return fsutil.write_text(path, text)


def _model(path: Path, kind: type[Any], data: dict[str, Any]) -> Any:
    try:
        return kind.model_validate(data)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e), where=path) from None


# ------------------------------------------------------------------------------------------------- corrections


def add_correction(
    configs_dir: Path, episode_id: str, heard_words: Sequence[TimedWord], at: float, heard: str, meant: str
) -> Path:
    """Add ``[[corrections]]`` at ``at`` (published timeline, seconds): ``heard`` (what the transcript shows now)
    becomes ``meant``. Checked against the recognised words with every earlier entry before it is written."""
    heard, meant = " ".join(heard.split()), " ".join(meant.split())
    if not heard or not meant:
        raise ReviewError("a correction needs the word heard and the word meant", where=episode_id)
    path = corrections_path(configs_dir, episode_id)
    text = _read(path) or _NEW_CORRECTIONS
    data = _data(path, text)
    entry = {"at": timecode.hms_ms(at), "heard": heard, "meant": meant}
    want = {**data, "corrections": [*data.get("corrections", []), entry]}
    corrections = _model(path, Corrections, want)
    apply_corrections(heard_words, corrections, path)  # a ConfigError that names the entry if it would not fit
    block = "[[corrections]]\n" + tomli_w.dumps(entry)
    return _write(path, tomledit.append(text, block), want, fallback=True)


# -------------------------------------------------------------------------------------------------------- cuts


def set_cut(configs_dir: Path, episode_id: str, cuts: Cuts, cut_id: str, choice: CutChoice) -> Path:
    """Record the producer's choice on candidate ``cut_id``: ``cut`` (in ``accept``), ``keep`` (in ``reject``) or
    ``open`` (in neither: the ``[edit]`` setting decides)."""
    if cut_id not in {c.id for c in cuts.candidates}:
        raise ReviewError(f"no cut candidate {cut_id!r}", where=episode_id, hint="reload the page")
    path = cut_decisions_path(configs_dir, episode_id)
    text = _read(path) or _NEW_CUTS
    data = _data(path, text)
    lists = {name: [x for x in data.get(name, []) if x != cut_id] for name in ("accept", "reject")}
    if choice == "cut":
        lists["accept"].append(cut_id)
    elif choice == "keep":
        lists["reject"].append(cut_id)
    want = dict(data)
    for name, ids in lists.items():
        if ids or name in data:
            want[name] = ids
    decide(cuts, _model(path, CutDecisions, want), path)  # every id is a candidate's
    try:
        for name in ("accept", "reject"):
            if name in want:
                lines = text.splitlines(keepends=True)
                text = tomledit.set_key(text, tomledit.table_span(lines, lambda _h: False, -1), name, want[name])
    except tomledit.Unedited:
        text = ""  # _write falls back to the data alone
    return _write(path, text, want, fallback=True)


# ---------------------------------------------------------------------------------------------------- speakers


def set_speaker_name(configs_dir: Path, episode_id: str, label: str, name: str) -> Path:
    """Name speaker ``label`` ``name`` in ``[names]``; a name equal to the label (or empty) removes the entry."""
    label, name = label.strip(), " ".join(name.split())
    if not label:
        raise ReviewError("a speaker label is needed", where=episode_id)
    path = speakers_path(configs_dir, episode_id)
    text = _read(path) or _NEW_SPEAKERS
    data = _data(path, text)
    names = dict(data.get("names", {}))
    if name and name != label:
        names[label] = name
    else:
        names.pop(label, None)
    want = {**data, "names": names}
    _model(path, SpeakerNames, want)
    value = names.get(label)
    try:
        lines = text.splitlines(keepends=True)
        span = tomledit.table_span(lines, lambda h: h == "[names]") if "names" in data else None
        text = tomledit.set_key(text, span, label, value, header="[names]")
    except tomledit.Unedited:
        text = ""
    return _write(path, text, want, fallback=True)


# ---------------------------------------------------------------------------------------------------- chapters


def move_chapter(configs_dir: Path, episode_id: str, index: int, start: float) -> Path:
    """Set ``[[chapters]]`` number ``index`` (from 0) to start at ``start`` seconds of the raw recordings (the
    config's timeline). The edited config is validated as a whole before it replaces the old one."""
    path = episode_path(configs_dir, episode_id)
    text = _read(path)
    data = _data(path, text)
    chapters = list(data.get("chapters", []))
    if not 0 <= index < len(chapters):
        raise ReviewError(f"no chapter {index + 1}", where=path, hint="reload the page")
    clock = _clock(start)
    want = {**data, "chapters": [*chapters[:index], {**chapters[index], "start": clock}, *chapters[index + 1 :]]}
    lines = text.splitlines(keepends=True)
    try:
        try:
            span = tomledit.table_span(lines, lambda h: h == "[[chapters]]", index)
            new = tomledit.set_key(text, span, "start", clock)
        except tomledit.Unedited:
            new = tomledit.set_in_inline_table(text, "chapters", index, "start", clock)  # chapters = [{...}, ...]
    except tomledit.Unedited as e:
        raise ReviewError(f"cannot change chapter {index + 1}'s start in place ({e})", where=path) from e
    episode_from_text(path, episode_id, new)  # the whole config must still validate (chapters in order)
    return _write(path, new, want, fallback=False)


def _clock(seconds: float) -> str:
    """``MM:SS.s`` or ``HH:MM:SS.s``, as a producer writes a chapter start (tenths: a chapter needs no more)."""
    tenths = max(0, round(seconds * 10))
    s, t = divmod(tenths, 10)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}.{t}" if h else f"{m:02d}:{s:02d}.{t}"
