"""Raw recordings that live outside git: in the bucket's private inbox, or at an https URL.

A 30-minute 24-bit recording is about 120 MB; a weekly show would add gigabytes a year to the repository. Instead
``produce upload-raw EPISODE FILE...`` puts each file into the bucket under ``storage.inbox_prefix`` (outside the
public ``prefix``), copies it into the local media folder (``media/raw/<id>/``, not in git), and writes the episode
config's ``recordings`` and one ``[[raw]]`` table per file: where it lives, its size and its SHA-256. A build on a
machine that lacks the file (the scheduled workflow's fresh runner) fetches it there once, checks size and SHA-256,
and only then gives it its name; a file already there is checked the same way and never replaced.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import fsutil
from ..config import EpisodeConfig, RawSource, Settings, StorageSettings, episode_from_text, episode_path
from ..errors import AudioError, ConfigError, KeylimeError, StorageError
from ..progress import ProgressFn, null_progress
from ..publish.storage import Store, content_type_for, is_valid_key_part, open_store

log = logging.getLogger(__name__)

#: Raw recordings are private and never change under a key: no caching anywhere in between.
RAW_CACHE_CONTROL = "private, no-store"


@dataclass(frozen=True)
class RawFile:
    """One recording fetched, checked or uploaded: ``action`` is ``present``, ``fetched`` or ``uploaded``."""

    file: Path
    source: str
    size: int
    sha256: str
    action: str

    def to_json(self) -> dict[str, Any]:
        """For ``--json``."""
        return {"file": str(self.file), "source": self.source, "size": self.size, "sha256": self.sha256,
                "action": self.action}  # fmt: skip


def _check(path: Path, r: RawSource, size: int, sha256: str, what: str) -> None:
    if (size, sha256) != (r.size, r.sha256):
        raise AudioError(
            f"{what} has {size} bytes and SHA-256 {sha256[:12]}..., the config records {r.size} bytes and "
            f"{r.sha256[:12]}...",
            where=path,
            hint="the recording changed since it was recorded in [[raw]]: upload it again with produce upload-raw, "
            "or move the wrong file away",
        )


def fetch_raw(
    episode: EpisodeConfig, storage: StorageSettings, *, progress: ProgressFn = null_progress
) -> list[RawFile]:
    """Make every ``[[raw]]`` recording of ``episode`` present at its ``file``, checked by size and SHA-256.

    A file already there is checked and kept (never replaced: raw inputs are only read); a missing one is fetched
    from the inbox (``key``) or its ``url`` into a temporary file, checked, then moved into place. Raises
    :class:`AudioError` for a file that does not match its record, :class:`StorageError` / :class:`ArchiveError`
    when the fetch fails.
    """
    from .importer import fetch_media

    done: list[RawFile] = []
    store: Store | None = None
    for r in episode.raw:
        source = r.url or f"inbox:{r.key}"
        if r.file.is_file():
            size, sha = r.file.stat().st_size, fsutil.sha256_file(r.file)
            _check(r.file, r, size, sha, "the recording")
            done.append(RawFile(r.file, source, size, sha, "present"))
            continue
        log.info("%s: fetching %s (%.1f MB) from %s", episode.id, r.file.name, r.size / 1e6, source)
        if r.key is not None:
            store = store or open_store(storage)
            tmp = r.file.with_name(f".{r.file.name}.fetch")
            try:
                size, sha = store.download(r.key, tmp, progress=progress)
                _check(r.file, r, size, sha, f"the inbox object {r.key}")
                tmp.replace(r.file)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            assert r.url is not None
            tmp = r.file.with_name(f".{r.file.name}.fetch")
            # Resumable (Range), size checked. The URL is the producer's own [[raw]] entry and its bytes are pinned by
            # SHA-256 (_check), so a raw file on their NAS (a private address) is fetched too.
            fetch_media(r.url, tmp, length=r.size, progress=progress, allow_private=True)
            try:
                size, sha = tmp.stat().st_size, fsutil.sha256_file(tmp)
                _check(r.file, r, size, sha, f"the download of {r.url}")
                tmp.replace(r.file)
            finally:
                tmp.unlink(missing_ok=True)
        done.append(RawFile(r.file, source, size, sha, "fetched"))
    return done


# ----------------------------------------------------------------------------------------------------- upload


def _inbox_key(storage: StorageSettings, episode_id: str, name: str) -> str:
    return "/".join(p for p in (storage.inbox_prefix, episode_id, name) if p)


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid TOML basic string


_RECORDINGS = re.compile(r"^recordings\s*=\s*\[[^\]]*\]\s*?$", flags=re.M | re.S)
_RAW_TABLE = re.compile(r"^\[\[raw\]\]\n(?:(?!\[)[^\n]*\n?)*", flags=re.M)


def _edit_config(text: str, recordings: list[str], tables: list[str]) -> str:
    """``text`` with ``recordings = [...]`` replaced by ``recordings`` and its ``[[raw]]`` tables by ``tables``;
    comments and everything else kept as they were."""
    lines = "recordings = [\n" + "".join(f"    {_toml_str(r)},\n" for r in recordings) + "]"
    if _RECORDINGS.search(text):
        text = _RECORDINGS.sub(lambda _: lines, text, count=1)
    else:  # top-level keys go before the first table
        m = re.search(r"^\[", text, flags=re.M)
        at = m.start() if m else len(text)
        text = text[:at] + lines + "\n\n" + text[at:]
    text = _RAW_TABLE.sub("", text).rstrip() + "\n"
    header = "\n# Raw recordings kept out of git (produce upload-raw): fetched into `file` when missing, checked.\n"
    return text + header + "\n".join(tables)


def upload_raw(
    settings: Settings,
    episode_id: str,
    files: list[Path],
    *,
    media_dir: Path | None = None,
    progress: ProgressFn = null_progress,
) -> list[RawFile]:
    """Upload a producer's recordings of ``episode_id`` into the bucket's inbox and record them in its config.

    Each file goes to ``<inbox_prefix>/<id>/<name>`` (verified like every upload), is copied to
    ``<media_dir>/raw/<id>/<name>`` (default: ``media/`` beside the configs folder, not in git) so this machine
    need not fetch it, and the config's ``recordings`` becomes these files, in order, each with a ``[[raw]]``
    table. The config is checked before it is replaced; the producer's files are only read.
    """
    storage = settings.show.storage
    store = open_store(storage)
    if not store.is_local and not storage.prefix:
        raise StorageError(
            "storage.prefix is empty, so the public URL serves the whole bucket and the inbox would be public",
            where=store.description,
            hint="publish under a prefix (storage.prefix / KEYLIME_S3_PREFIX, e.g. podcast)",
        )
    path = episode_path(settings.configs_dir, episode_id)
    if not path.is_file():
        raise ConfigError("no such episode config", where=path, hint=f"run `produce new {episode_id}` first")
    if not files:
        raise ConfigError("no recordings given", hint=f"produce upload-raw {episode_id} part-1.flac part-2.flac")
    names = [Path(f).name for f in files]
    for f, name in zip(files, names, strict=True):
        if not Path(f).is_file():
            raise AudioError("no such recording", where=f)
        if not is_valid_key_part(name):
            raise AudioError(
                f"{name!r} cannot be a key", where=f, hint="rename it: letters, digits, '.', '-', '_', no spaces"
            )
    if len(set(names)) != len(names):
        raise AudioError("two recordings have one name", hint="rename one of them")
    media = Path(media_dir) if media_dir is not None else settings.configs_dir.resolve().parent / "media"
    folder = (media / "raw" / episode_id).resolve()
    store.check()
    done: list[RawFile] = []
    tables: list[str] = []
    refs: list[str] = []
    episodes_dir = path.parent.resolve()
    for f, name in zip(files, names, strict=True):
        digest = store.digest(Path(f))
        key = _inbox_key(storage, episode_id, name)
        ctype = content_type_for(name)
        store.upload_file(key, Path(f), content_type=ctype, cache_control=RAW_CACHE_CONTROL, digest=digest,
                          progress=progress)  # fmt: skip
        local = folder / name
        if not local.is_file() or fsutil.sha256_file(local) != digest.sha256:
            with fsutil.atomic_path(local) as tmp:
                shutil.copyfile(f, tmp)
        ref = Path(_relative(local, episodes_dir)).as_posix()
        refs.append(ref)
        tables.append(
            f"[[raw]]\nfile = {_toml_str(ref)}\nkey = {_toml_str(key)}\nsize = {digest.size}\n"
            f'sha256 = "{digest.sha256}"\n'
        )
        done.append(RawFile(local, f"inbox:{key}", digest.size, digest.sha256, "uploaded"))
    text = _edit_config(path.read_text("utf-8"), refs, tables)
    # Validate what would be written before it replaces the config: a config that does not load is never left.
    try:
        episode_from_text(path, episode_id, text)
    except KeylimeError as e:
        raise ConfigError(f"the updated config would not load: {e.message}", where=path, hint=e.hint) from None
    fsutil.write_text(path, text)
    return done


def _relative(target: Path, base: Path) -> str:
    import os

    return os.path.relpath(target, base)
