"""``produce cuts EPISODE``: the cut candidates the edit stage found in the master and what becomes of each (cut,
muted, accepted, rejected, or waiting for the producer's word in ``configs/episodes/<id>.cuts.toml``)."""

from __future__ import annotations

from functools import partial
from typing import Any

from .app import Cli, EpisodeArg, Reply, command


def _decision(kind_action: str, cid: str, accepted: set[str], rejected: set[str]) -> str:
    if cid in rejected:
        return "rejected"
    if cid in accepted:
        return "accepted"
    return {"cut": "cut", "mute": "muted"}.get(kind_action, "proposed")


@command("cuts")
def cuts_cmd(cli: Cli, episode: EpisodeArg) -> Reply:
    """List EPISODE's cut candidates: long pauses, hesitations, retakes and false starts, each with its id, times,
    the words around it, a confidence and what happens to it.

    Accept or reject a proposed one by id in configs/episodes/EPISODE.cuts.toml (the lists accept and reject, and a
    cut table with start and end for each cut of your own); `produce EPISODE` applies them without running Whisper
    again. Earlier stages run first when out of date (the master, then Whisper on it).
    """
    from rich.table import Table

    from ..config import cut_decisions_path, load_cut_decisions
    from ..edit import read_cuts
    from ..pipeline import run_episode
    from ..timecode import hms_ms

    settings = cli.settings()
    with cli.progress() as progress:
        result = run_episode(
            settings, episode, upto=("recognise", "edit"), force=cli.force, progress=progress,
            on_stage=partial(cli.on_stage, episode),
        )  # fmt: skip
    edited = result.artefacts["edit"]
    layout = settings.layout(result.episode_id)
    cuts = read_cuts(layout.cuts_json)
    path = cut_decisions_path(settings.configs_dir, result.episode_id)
    decisions = load_cut_decisions(path)
    accepted, rejected = set(decisions.accept), set(decisions.reject)
    rows: list[dict[str, Any]] = [
        {
            "id": c.id, "kind": c.kind, "start": c.start, "end": c.end, "seconds": round(c.end - c.start, 3),
            "confidence": c.confidence, "action": c.action,
            "decision": _decision(c.action, c.id, accepted, rejected),
            "before": c.before, "text": c.text, "after": c.after, "reason": c.reason,
        }
        for c in cuts.candidates
    ]  # fmt: skip
    own = [{"start": c.start, "end": c.end, "note": c.note} for c in decisions.cut]
    if cli.for_people:
        table = Table(title=f"{result.episode_id}: cut candidates (times on the master, {layout.master_mp3.name})")
        for col in ("id", "at", "s", "conf", "decision", "words"):
            table.add_column(col)
        for r in rows:
            words = f"{r['before']} [{r['text'] or '…'}] {r['after']}".strip()
            table.add_row(r["id"], hms_ms(r["start"]), f"{r['seconds']:.2f}", f"{r['confidence']:.2f}",
                          r["decision"], words)  # fmt: skip
        cli.out.print(table)
        cli.say(edited.describe())
        cli.say(f"decisions: {path}")
    return Reply({
        "episode": result.episode_id, "cuts": str(layout.cuts_json), "decisions": str(path), "candidates": rows,
        "own_cuts": own, "edit": edited.summary(),
    })  # fmt: skip
