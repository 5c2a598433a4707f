"""``produce batch``: the pipeline over many episodes as Dask tasks (docs/archive.md).

One task is one episode. Workers share no disk with the driver, so a task carries its configs as data (the
pydantic models pickle) plus a reference for each input file: an object the driver put in the store
(``<prefix>/batch/inputs/<sha256>/<name>``, content-addressed and verified like every upload) or, for an archive
episode, its old enclosure URL (fetched resumably and checked against the enclosure length). The task rebuilds the
files in a private temp folder, runs the stages there (:func:`keylime_prod.pipeline.run_episode`), publishes the
episode's objects and manifest (content-addressed and verified, as ``produce publish`` does) without touching the
feed, records ``batch/done/<id>.json`` (the digest of its inputs and of the manifest it wrote) and returns a small
:class:`EpisodeOutcome`. The driver rebuilds the feed once, last, from the manifests in the bucket, so the live
feed only ever lists episodes whose objects were all verified.

Faults: a worker that dies takes its task with it; the scheduler gives the task to another worker, which redoes
it from its inputs. Objects are content-addressed and the manifest is written only after every object is
verified, so a half-done task leaves nothing the feed points to, and the redo ends with the same bytes.

Re-running skips an episode whose done record still matches both its inputs and the published manifest. A failed
episode is an outcome, not an exception: the others go on. Whisper is loaded once per worker process (and thread):
:mod:`keylime_prod.transcript.engines` keeps loaded engines; each task runs Whisper on the cores it holds (one by
default).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w

from .. import __version__, fsutil
from ..audio.artefact import Master
from ..config import EpisodeConfig, Settings, ShowConfig, list_episodes, load_episode
from ..errors import ArchiveError, KeylimeError
from ..publish.storage import Store, open_store
from .importer import fetch_media

log = logging.getLogger(__name__)

#: Dask event topic the tasks report their stages on (the driver's progress and the fault test listen to it).
EVENT_TOPIC = "keylime-batch"
INPUTS = "batch/inputs"
DONE = "batch/done"
_INPUT_CACHE_CONTROL = "private, max-age=0"

Status = Literal["published", "built", "skipped", "failed"]
STATUSES: tuple[Status, ...] = ("published", "built", "skipped", "failed")


# -------------------------------------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class InputRef:
    """Where a task finds one input file: a store key (with its SHA-256) or a source URL (with its length)."""

    name: str
    key: str | None = None
    sha256: str | None = None
    url: str | None = None
    length: int | None = None

    def fingerprint(self) -> str:
        return self.sha256 or f"{self.url}#{self.length}"


@dataclass(frozen=True)
class Task:
    """Everything one episode's task needs, as data: small to pickle, no path on the driver's disk is opened."""

    episode: EpisodeConfig
    show: ShowConfig
    #: Driver path (as written in the configs) -> where the worker gets that file.
    inputs: dict[str, InputRef]
    stages: tuple[str, ...] | None
    inputs_digest: str
    now: dt.datetime
    threads: int = 1
    #: Whether an archive URL may be on a loopback or private address (keylime_prod.http, ``--allow-private``).
    allow_private: bool = False


@dataclass(frozen=True)
class EpisodeOutcome:
    """What a task returns (or the driver records for an episode it skipped or could not run)."""

    episode_id: str
    status: Status
    seconds: float = 0.0
    worker: str = ""
    error: str | None = None
    exit_code: int = 0
    guid: str | None = None
    manifest_key: str | None = None
    audio_seconds: float = 0.0
    bytes_uploaded: int = 0
    #: Seconds per step inside the task: ``inputs`` (fetching), each stage, ``publish``.
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "episode": self.episode_id,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "worker": self.worker,
            "error": self.error,
            "exit_code": self.exit_code,
            "guid": self.guid,
            "manifest": self.manifest_key,
            "audio_seconds": round(self.audio_seconds, 3),
            "bytes_uploaded": self.bytes_uploaded,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


def _emit(event: dict[str, Any]) -> None:
    """Report a step to the driver through the Dask scheduler's event log (nothing outside a Dask worker)."""
    try:
        from distributed import get_worker

        get_worker().log_event(EVENT_TOPIC, event)
    except (ImportError, ValueError):
        pass


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"local:{socket.gethostname()}:{os.getpid()}"


def _fetch_inputs(task: Task, store: Store, folder: Path) -> dict[str, Path]:
    """Every input of ``task`` as a local file under ``folder``: store objects checked by SHA-256, URLs by length."""
    out: dict[str, Path] = {}
    for i, (orig, ref) in enumerate(sorted(task.inputs.items())):
        dest = folder / str(i) / ref.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if ref.key is not None:
            data = store.get_bytes(ref.key)
            if data is None or hashlib.sha256(data).hexdigest() != ref.sha256:
                raise ArchiveError(
                    "input missing or changed in the store",
                    where=store.describe_key(ref.key),
                    hint="run the batch again",
                )
            fsutil.write_bytes(dest, data)
        else:
            assert ref.url is not None
            fetch_media(ref.url, dest, length=ref.length, allow_private=task.allow_private)
        out[orig] = dest
    return out


def _local(task: Task, files: dict[str, Path], configs: Path) -> tuple[EpisodeConfig, ShowConfig]:
    """The task's configs with every input path pointing at the worker's copy."""

    def p(path: Path | None) -> Path | None:
        return files[str(path)] if path is not None and str(path) in files else path

    ep = task.episode.model_copy(
        update={
            "recordings": tuple(p(r) for r in task.episode.recordings),
            "tracks": tuple(t.model_copy(update={"file": p(t.file)}) for t in task.episode.tracks),
            "artwork": p(task.episode.artwork),
        }
    )
    show = task.show
    assets = show.assets.model_copy(update={k: p(getattr(show.assets, k)) for k in ("intro", "disclaimer", "outro")})
    whisper = show.whisper.model_copy(update={"threads": task.threads})
    show = show.model_copy(
        update={"show": show.show.model_copy(update={"artwork": p(show.show.artwork)}), "assets": assets,
                "whisper": whisper}
    )  # fmt: skip
    # Chapter images are named relative to the episodes folder: put them there, and never anywhere else (an
    # absolute or ../ name from the config would make the worker write outside its temp folder).
    for c in ep.chapters:
        if c.img and not c.img.startswith(("http://", "https://")) and c.img in files:
            target = (configs / "episodes" / c.img).resolve()
            if not target.is_relative_to(configs.resolve()):
                raise ArchiveError("a chapter image outside the configs folder", where=c.img)
            target.parent.mkdir(parents=True, exist_ok=True)
            fsutil.write_bytes(target, files[c.img].read_bytes())
    return ep, show


def _episode_toml(ep: EpisodeConfig) -> str:
    data = ep.model_dump(mode="json", exclude_none=True, exclude={"id"})
    return tomli_w.dumps(data)


def done_key(store: Store, episode_id: str) -> str:
    return store.key(DONE, f"{episode_id}.json")


def run_task(task: Task) -> EpisodeOutcome:
    """Run one episode in a private temp folder and publish it (objects and manifest; never the feed).

    Any :class:`KeylimeError` becomes a ``failed`` outcome, so one bad episode never stops the batch.
    """
    from ..pipeline import STAGE_BY_NAME, run_episode
    from ..pipeline.release import publish_episodes

    t0 = time.perf_counter()
    ep_id = task.episode.id
    worker = _worker_name()
    timings: dict[str, float] = {}
    _emit({"episode": ep_id, "step": "start", "worker": worker})
    try:
        store = open_store(task.show.storage)
        with fsutil.temporary_folder("batch", ep_id) as root:
            t = time.perf_counter()
            files = _fetch_inputs(task, store, root / "inputs")
            configs = root / "configs"
            episode, show = _local(task, files, configs)
            fsutil.write_text(configs / "episodes" / f"{ep_id}.toml", _episode_toml(episode))
            settings = Settings(show=show, configs_dir=configs, build_root=root / "build")
            timings["inputs"] = time.perf_counter() - t
            wanted = list(task.stages) if task.stages is not None else ["publish"]
            # Publishing is this task's own step (without the feed): the pipeline builds what it needs.
            build = [s for s in wanted if s != "publish"] or list(STAGE_BY_NAME["publish"].needs)
            marks: dict[str, float] = {}

            def on_stage(stage: str, what: str) -> None:
                if what == "start":
                    marks[stage] = time.perf_counter()
                else:
                    timings[stage] = time.perf_counter() - marks.get(stage, time.perf_counter())
                _emit({"episode": ep_id, "step": stage, "what": what, "worker": worker})

            result = run_episode(settings, ep_id, upto=build, on_stage=on_stage)
            master = result.get(Master)
            audio_seconds = master.duration if master is not None else 0.0
            if "publish" not in wanted:
                return EpisodeOutcome(
                    ep_id, "built", time.perf_counter() - t0, worker, audio_seconds=audio_seconds, timings=timings
                )
            t = time.perf_counter()
            _emit({"episode": ep_id, "step": "publish", "what": "start", "worker": worker})
            published = publish_episodes(settings, [ep_id], now=task.now, update_feed=False)
            pe = published.episodes[0]
            manifest = store.get_bytes(pe.manifest_key)
            if manifest is None:
                raise ArchiveError("the manifest vanished right after it was written", where=pe.manifest_key)
            record = {
                "episode": ep_id,
                "inputs": task.inputs_digest,
                "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
                "keylime_prod": __version__,
            }
            store.put_bytes(
                done_key(store, ep_id),
                json.dumps(record, indent=2).encode() + b"\n",
                content_type="application/json",
                cache_control=_INPUT_CACHE_CONTROL,
            )
            timings["publish"] = time.perf_counter() - t
    except KeylimeError as e:
        log.error("%s: %s", ep_id, e)
        _emit({"episode": ep_id, "step": "failed", "worker": worker, "error": str(e)})
        return EpisodeOutcome(ep_id, "failed", time.perf_counter() - t0, worker, str(e), e.exit_code, timings=timings)
    _emit({"episode": ep_id, "step": "done", "worker": worker})
    return EpisodeOutcome(
        ep_id,
        "published",
        time.perf_counter() - t0,
        worker,
        guid=pe.guid,
        manifest_key=pe.manifest_key,
        audio_seconds=audio_seconds,
        bytes_uploaded=published.bytes_uploaded,
        timings=timings,
    )


# ------------------------------------------------------------------------------------------------------ driver


def _local_inputs(settings: Settings, ep: EpisodeConfig) -> list[tuple[str, Path, str]]:
    """(name as the task will look it up, local path, what it is) of every file the episode's stages read: only
    these go to the bucket."""
    show = settings.show
    paths = [(str(r), Path(r), "audio") for r in (*ep.recordings, *(t.file for t in ep.tracks))]
    for p in (show.assets.intro, show.assets.disclaimer, show.assets.outro):
        if p is not None:
            paths.append((str(p), Path(p), "audio"))
    for p in (ep.artwork, show.show.artwork):
        if p is not None:
            paths.append((str(p), Path(p), "cover"))
    for c in ep.chapters:
        if c.img and not c.img.startswith(("http://", "https://")):
            paths.append((c.img, _chapter_image(settings.configs_dir, c.img), "chapter image"))
    return paths


def _chapter_image(configs_dir: Path, img: str) -> Path:
    """A chapter's local image, only inside the configs folder: the batch uploads it to the bucket, so no file
    elsewhere on this machine may ride along."""
    path = (configs_dir / "episodes" / img).resolve()
    if not path.is_relative_to(configs_dir.resolve()):
        raise ArchiveError(
            "a chapter image outside the configs folder is not uploaded",
            where=path,
            hint="keep chapter images beside the episode configs, or use an http(s) URL",
        )
    return path


def _check_input(path: Path, kind: str) -> None:
    """The check a local run makes of the same file before it reads it (the master stage probes audio, the tag
    stage applies Apple's image rules), made before the file leaves this machine."""
    from .. import ffmpeg
    from ..tags import check_artwork

    if kind == "audio":
        ffmpeg.probe(path)
    else:
        check_artwork(path, cover=kind == "cover")


def plan_task(
    settings: Settings,
    ep: EpisodeConfig,
    store: Store,
    *,
    stages: Sequence[str] | None,
    now: dt.datetime,
    threads: int,
    allow_private: bool = False,
) -> Task:
    """The task for ``ep``: files on this machine go to the store (once: content-addressed, verified); an archive
    recording that is not here is fetched by the worker from its old URL."""
    inputs: dict[str, InputRef] = {}
    local = _local_inputs(settings, ep)
    for _name, path, kind in local:  # every file checked before any leaves this machine
        if path.is_file():
            _check_input(path, kind)
    for name, path, _kind in local:
        if name in inputs:
            continue
        if path.is_file():
            fd = store.digest(path)
            key = store.key(INPUTS, fd.sha256, path.name)
            store.upload_file(
                key, path, content_type="application/octet-stream", cache_control=_INPUT_CACHE_CONTROL, digest=fd
            )
            inputs[name] = InputRef(path.name, key=key, sha256=fd.sha256)
        elif ep.archive is not None and name in (str(r) for r in ep.recordings):
            inputs[name] = InputRef(path.name, url=ep.archive.url, length=ep.archive.length)
        else:
            raise ArchiveError("input file not found", where=path, hint="fix the path or run `produce import`")
    show_part = settings.show.model_dump(mode="json", exclude={"whisper": {"threads"}})
    digest = hashlib.sha256(
        json.dumps(
            [
                "batch/1",
                __version__,
                ep.model_dump(mode="json"),
                show_part,
                sorted((k, v.fingerprint()) for k, v in inputs.items()),
                list(stages) if stages is not None else None,
            ],
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()
    return Task(
        ep, settings.show, inputs, tuple(stages) if stages is not None else None, digest, now, threads, allow_private
    )


def is_done(store: Store, task: Task) -> bool:
    """Whether the bucket holds this episode published from exactly these inputs (and its manifest unchanged)."""
    raw = store.get_bytes(done_key(store, task.episode.id))
    if raw is None:
        return False
    try:
        record = json.loads(raw)
    except ValueError:
        return False
    if record.get("inputs") != task.inputs_digest:
        return False
    manifest = store.get_bytes(store.key("episodes", task.episode.id, "manifest.json"))
    return manifest is not None and hashlib.sha256(manifest).hexdigest() == record.get("manifest_sha256")


@dataclass(frozen=True)
class BatchStatus:
    """Progress of a batch, for the CLI's bar: episodes done/failed/skipped of ``total``, workers, running steps."""

    total: int
    done: int
    failed: int
    skipped: int
    workers: int
    running: dict[str, str]


@dataclass(frozen=True)
class BatchResult:
    """The outcome of :func:`run_batch`."""

    outcomes: tuple[EpisodeOutcome, ...]
    scheduler: str
    workers: int
    feed_updated: bool
    feed_items: int
    feed_url: str | None
    seconds: float

    @property
    def failed(self) -> tuple[EpisodeOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "failed")

    def summary(self) -> list[str]:
        """One line per episode that did not fail (failures are errors, printed apart) and one for the run."""
        lines = [
            f"{o.episode_id}: {o.status}{f' on {o.worker}' if o.worker else ''} ({o.seconds:.1f} s)"
            for o in self.outcomes
            if o.status != "failed"
        ]
        feed = f"feed: {self.feed_items} items{' (updated)' if self.feed_updated else ''}"
        return [*lines, f"{feed}; {self.scheduler}, {self.workers} workers, {self.seconds:.1f} s"]

    def to_json(self) -> dict[str, Any]:
        return {
            "scheduler": self.scheduler,
            "workers": self.workers,
            "seconds": round(self.seconds, 3),
            "feed": {"updated": self.feed_updated, "items": self.feed_items, "url": self.feed_url},
            "counts": {
                s: sum(o.status == s for o in self.outcomes) for s in ("published", "built", "skipped", "failed")
            },
            "episodes": [o.to_json() for o in self.outcomes],
        }


def select_episodes(
    configs_dir: Path, ids: Sequence[str] = (), *, all_: bool = False, since: dt.date | None = None
) -> list[str]:
    """The episode ids a batch runs: the given ids, or every episode (``all_``), or those dated on/after ``since``;
    demo episodes only when named."""
    if ids:
        return list(dict.fromkeys(ids))
    if not all_ and since is None:
        raise ArchiveError("no episodes chosen", hint="give episode ids, --all or --since DATE")
    out = []
    for eid in list_episodes(configs_dir):
        try:
            ep = load_episode(configs_dir, eid)
        except KeylimeError:
            out.append(eid)  # reported when the batch loads it
            continue
        if ep.demo:
            # Demos (demo = true) are never part of the catalogue: --all must not publish them with the show.
            log.info("%s is a demo (demo = true): left out of the batch (name it to run it)", eid)
            continue
        if since is not None and ep.publish_date.date() < since:
            continue
        out.append(eid)
    return out


def _connect(scheduler: str | None, workers: int | None) -> tuple[Any, Any, str]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ArchiveError(
            "the batch needs Dask", hint="pip install 'keylime-prod[cluster]' (dask[distributed])"
        ) from None
    if scheduler:
        try:
            client = Client(scheduler, timeout=15)
        except (OSError, TimeoutError) as e:
            raise ArchiveError(f"cannot reach the Dask scheduler ({e})", where=scheduler) from None
        return client, None, scheduler
    from ..machine import physical_cores

    n = workers or physical_cores()
    # One process per core, one thread each: Whisper and ffmpeg hold the GIL-free cores; processes keep one
    # episode's memory from another's.
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster, f"LocalCluster({n} workers)"


def run_batch(
    settings: Settings,
    episode_ids: Sequence[str],
    *,
    stages: Sequence[str] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    threads: int = 1,
    force: bool = False,
    now: dt.datetime | None = None,
    on_status: Callable[[BatchStatus], None] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    allow_private: bool = False,
) -> BatchResult:
    """Run ``episode_ids`` as Dask tasks (a :class:`LocalCluster` of ``workers`` processes, or the running
    ``scheduler``), then rebuild the feed once from the bucket's manifests.

    ``threads``: cores each task holds (Whisper's threads). ``force`` runs episodes whose done record matches.
    ``on_status`` gets a :class:`BatchStatus` after every change; ``on_event`` every step a task reports.
    Failures are outcomes; the feed is rebuilt whatever failed (it only lists verified episodes).
    """
    from ..pipeline import STAGE_BY_NAME
    from ..publish import publish

    t0 = time.perf_counter()
    unknown = [x for x in stages or () if x not in STAGE_BY_NAME]
    if unknown:
        raise ArchiveError(f"unknown stage(s): {', '.join(unknown)}", hint=f"stages: {', '.join(STAGE_BY_NAME)}")
    now = now or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    store = open_store(settings.show.storage)
    store.check()
    if scheduler and store.kind == "local":
        raise ArchiveError(
            "workers on other machines cannot reach a local publish folder",
            where="storage",
            hint="configure S3-compatible storage ([storage] or KEYLIME_S3_*) for a remote scheduler",
        )
    outcomes: dict[str, EpisodeOutcome] = {}
    tasks: list[Task] = []
    for eid in episode_ids:
        try:
            ep = load_episode(settings.configs_dir, eid)
            task = plan_task(settings, ep, store, stages=stages, now=now, threads=threads, allow_private=allow_private)
        except KeylimeError as e:
            outcomes[eid] = EpisodeOutcome(eid, "failed", error=str(e), exit_code=e.exit_code)
            continue
        if not force and (stages is None or "publish" in stages) and is_done(store, task):
            outcomes[eid] = EpisodeOutcome(eid, "skipped")
            continue
        tasks.append(task)

    track = _Tracker(len(episode_ids), outcomes, on_status)
    name = "none"
    if tasks:
        client, cluster, name = _connect(scheduler, workers)
        try:

            def handler(event: Any) -> None:
                _, msg = event
                if isinstance(msg, dict) and "episode" in msg:
                    track.step(msg)
                    if on_event:
                        on_event(msg)

            client.subscribe_topic(EVENT_TOPIC, handler)
            _gather(client, tasks, track)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    track.report()
    feed = None
    if stages is None or "publish" in stages:
        feed = publish([], settings.show, store=store, now=now)
    ordered = tuple(outcomes[e] for e in episode_ids if e in outcomes)
    return BatchResult(
        ordered,
        name,
        track.most_workers,
        feed.feed_updated if feed else False,
        feed.feed_items if feed else 0,
        feed.feed_url if feed else None,
        time.perf_counter() - t0,
    )


class _Tracker:
    """The driver's view of a running batch (outcomes, steps reported by tasks, workers), behind one lock: task
    events arrive on the Dask client's thread, outcomes on the driver's."""

    def __init__(
        self, total: int, outcomes: dict[str, EpisodeOutcome], on_status: Callable[[BatchStatus], None] | None
    ) -> None:
        self.total = total
        self.outcomes = outcomes
        self.on_status = on_status
        self.running: dict[str, str] = {}
        self.workers = 0
        self.most_workers = 0
        self.lock = threading.Lock()

    def step(self, msg: dict[str, Any]) -> None:
        with self.lock:
            self.running[msg["episode"]] = f"{msg.get('step')} on {msg.get('worker')}"

    def finished(self, outcome: EpisodeOutcome, workers: int) -> None:
        with self.lock:
            self.outcomes[outcome.episode_id] = outcome
            self.running.pop(outcome.episode_id, None)
            self.workers = workers
            self.most_workers = max(self.most_workers, workers)
        self.report()

    def report(self) -> None:
        if self.on_status is None:
            return
        with self.lock:
            vals = list(self.outcomes.values())
            st = BatchStatus(
                total=self.total,
                done=sum(o.status in ("published", "built") for o in vals),
                failed=sum(o.status == "failed" for o in vals),
                skipped=sum(o.status == "skipped" for o in vals),
                workers=self.workers,
                running=dict(self.running),
            )
        self.on_status(st)


def _gather(client: Any, tasks: list[Task], track: _Tracker) -> None:
    """Submit every task and record outcomes as they finish (with the number of workers the scheduler has then)."""
    from distributed import as_completed

    def workers() -> int:
        return len(client.scheduler_info().get("workers", {}))

    futures = {
        client.submit(run_task, t, key=f"keylime-{t.episode.id}-{t.inputs_digest[:12]}", pure=False): t for t in tasks
    }
    track.workers = track.most_workers = workers()
    track.report()
    for fut in as_completed(futures):
        t = futures[fut]
        try:
            outcome = fut.result()
        except Exception as e:  # KilledWorker after too many deaths, or an unexpected crash inside the task
            outcome = EpisodeOutcome(t.episode.id, "failed", error=f"{type(e).__name__}: {e}", exit_code=1)
        track.finished(outcome, workers())
