"""The build folder's layout: every path in ``build/<id>/`` comes from one :class:`BuildLayout`.

yt-dlp decides every output name in one place (``prepare_filename``); here the pipeline makes one layout per episode
and hands it to the stages, so no stage spells a file name itself and two stages can never disagree about where a
file lives. A new output is one more property here::

    build/<id>/<id>.mp3             the master (untagged: master.json's audio_sha256 is its hash)
    build/<id>/master.json          how it was mastered
    build/<id>/loudness.json        loudness curves before/after (written by audio.master, read by the report)
    build/<id>/transcript.*         txt, srt, vtt, json, html and transcript.report.json
    build/<id>/heard.json           every word as the recogniser heard it, and how (the recognise stage's artefact)
    build/<id>/words.json           every word after the producer's corrections: start, end, probability, speaker
    build/<id>/cuts.json            cut candidates on the master (the edit stage), edit.json what it applied
    build/<id>/edited/<id>.mp3      the master with the cuts applied, edited/{master,loudness}.json its timeline
    build/<id>/chapters.json        Podcasting 2.0 chapters
    build/<id>/show-notes.{md,html}
    build/<id>/tagged/<id>.mp3      the master with ID3 tags, cover and chapters: what is published
    build/<id>/tagged.json          what the tag stage wrote (and the tagged file's own hash)
    build/<id>/cuts.json            cut candidates (keylime_prod/edit/)
    build/<id>/report.html          the production report (published only if [report] publish), report.json its figures
    build/<id>/state.json           the pipeline's per-stage cache keys
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BuildLayout:
    """Where each file of one episode's build lives. ``root`` is ``<build root>/<episode id>``."""

    root: Path
    episode_id: str

    @classmethod
    def of(cls, build_root: Path, episode_id: str) -> BuildLayout:
        """The layout of ``episode_id`` under ``build_root`` (the ``--build-dir``, ``./build`` by default)."""
        return cls(Path(build_root) / episode_id, episode_id)

    # -- master (written by audio.master, which takes ``root`` and builds this layout from it)
    @property
    def master_mp3(self) -> Path:
        return self.root / f"{self.episode_id}.mp3"

    @property
    def master_json(self) -> Path:
        return self.root / "master.json"

    @property
    def master_flac(self) -> Path:
        """The 16-bit PCM the master's MP3 was encoded from, losslessly: what the edit cuts, so a cut episode is
        one lossy generation, not an MP3 of a decoded MP3."""
        return self.root / "master.flac"

    @property
    def loudness_json(self) -> Path:
        """Momentary/short-term loudness before and after, on the published timeline (the report's curves)."""
        return self.root / "loudness.json"

    # -- speakers (speakers.diarize: who speaks when in the raw recordings)
    @property
    def turns_json(self) -> Path:
        return self.root / "turns.json"

    # -- transcript (transcript.transcribe writes ``<transcript_dir>/<transcript_stem>.<fmt>``)
    transcript_stem = "transcript"

    @property
    def transcript_dir(self) -> Path:
        return self.root

    @property
    def transcript_report(self) -> Path:
        return self.root / f"{self.transcript_stem}.report.json"

    @property
    def heard_json(self) -> Path:
        return self.root / "heard.json"

    @property
    def words_json(self) -> Path:
        return self.root / "words.json"

    # -- the edit (edit.edit_master: candidates, and the master with the decided cuts applied)
    @property
    def cuts_json(self) -> Path:
        return self.root / "cuts.json"

    @property
    def edit_json(self) -> Path:
        return self.root / "edit.json"

    @property
    def edited_mp3(self) -> Path:
        # The master's own file name in its own folder, as the tagged copy: the published key keeps its name.
        return self.root / "edited" / f"{self.episode_id}.mp3"

    @property
    def edited_master_json(self) -> Path:
        return self.root / "edited" / "master.json"

    @property
    def edited_loudness_json(self) -> Path:
        """The report's loudness curves on the cut master's timeline."""
        return self.root / "edited" / "loudness.json"

    # -- chapters, notes, tags
    @property
    def chapters_json(self) -> Path:
        return self.root / "chapters.json"

    @property
    def notes_md(self) -> Path:
        return self.root / "show-notes.md"

    @property
    def notes_html(self) -> Path:
        return self.root / "show-notes.html"

    @property
    def tagged_mp3(self) -> Path:
        # Same file name as the master, in its own folder: the published key (``<name>.<sha>.mp3``) keeps its name.
        return self.root / "tagged" / f"{self.episode_id}.mp3"

    @property
    def tagged_json(self) -> Path:
        return self.root / "tagged.json"

    # -- the production report (reads loudness_json, words_json and cuts_json)
    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    # -- the pipeline's own files
    @property
    def lock(self) -> Path:
        # Held for a whole run (fsutil.hold_lock): two runs on one build folder would overwrite each other's files.
        return self.root / ".lock"

    @property
    def state_json(self) -> Path:
        return self.root / "state.json"
