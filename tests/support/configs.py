"""Show and episode configs for tests, built from keylime_prod.config's models and written as TOML with tomli_w.

A test describes its show and episode with the same pydantic models the pipeline validates (so a typo is an error
here, not a silently different config) and writes them where ``load_settings`` / ``load_episode`` read them.
``raw`` keys are laid on the written table as given: for values the models refuse (a test of the error a user
sees) or the clock strings a user types (``start = "00:03.5"``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import AnyUrl, BaseModel

from keylime_prod.config import (
    Assets,
    AudioSettings,
    DenoiseSettings,
    EpisodeConfig,
    FeedSettings,
    Person,
    ShowConfig,
    ShowInfo,
    StorageSettings,
    episode_path,
)
from support.media import COVER
from support.s3 import BUCKET

#: The show most tests use: only the required fields and one host.
SHOW_INFO: dict[str, Any] = {
    "title": "Test Show",
    "description": "A show for tests.",
    "author": "Test Author",
    "owner_name": "Test Owner",
    "owner_email": "owner@example.org",
    "artwork": COVER,
    "website": "https://example.org/",
    "feed_url": "https://media.example.org/feed.xml",
    "copyright": "© 2026 Test",
    "disclaimer_text": "This is a test disclaimer.",
    "hosts": ({"name": "Lara Varpio"},),
}


def _plain(v: Any) -> Any:
    """A model dump made of what TOML holds: paths and URLs as strings, tuples as arrays, no None."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items() if x is not None}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (Path, AnyUrl)):
        return str(v)
    return v


def table(model: BaseModel, **raw: Any) -> dict[str, Any]:
    """``model`` as a TOML table: only the fields that differ from the defaults, then ``raw`` laid on top (a dict
    value is merged into the sub-table of that name)."""
    data: dict[str, Any] = _plain(model.model_dump(mode="python", exclude_defaults=True))
    for key, value in raw.items():
        if isinstance(value, Mapping) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def write_show(configs: Path, show: ShowConfig, **raw: Any) -> Path:
    """Write ``configs/show.toml``; returns its path."""
    configs.mkdir(parents=True, exist_ok=True)
    path = configs / "show.toml"
    path.write_text(tomli_w.dumps(table(show, **raw)), encoding="utf-8")
    return path


def write_episode(configs: Path, episode: EpisodeConfig, **raw: Any) -> Path:
    """Write ``configs/episodes/<episode.id>.toml`` (the id is the file name, not a key); returns its path."""
    path = episode_path(configs, episode.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = table(episode, **raw)
    data.pop("id", None)
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def show_config(
    *,
    artwork: Path | None = None,
    assets: Mapping[str, Path] | None = None,
    audio: Mapping[str, Any] | None = None,
    **sections: Any,
) -> ShowConfig:
    """The test show with ``assets`` (intro/disclaimer/outro files), ``[audio]`` values and other sections."""
    info = {**SHOW_INFO, "artwork": artwork or COVER}
    return ShowConfig(
        show=ShowInfo.model_validate(info),
        assets=Assets(**dict(assets or {})),
        audio=AudioSettings.model_validate(dict(audio or {})),
        **sections,
    )


def episode_config(recordings: Sequence[Path], episode_id: str = "ep-1", **fields: Any) -> EpisodeConfig:
    """Episode 1 of the test show ("Test episode", 2026-01-01, hosted by Lara Varpio) over ``recordings``."""
    base: dict[str, Any] = {
        "id": episode_id,
        "number": 1,
        "title": "Test episode",
        "publish_date": dt.date(2026, 1, 1),
        "summary": "Testing.",
        "recordings": tuple(recordings),
        "hosts": ({"name": "Lara Varpio"},),
    }
    return EpisodeConfig.model_validate({**base, **fields})


def plain(**kw: Any) -> AudioSettings:
    """Audio settings for tests of loudness, formats and the timeline: jfk.wav's own hiss and 60 Hz hum would send
    each of them through the denoiser (its own tests are in test_audio_speech.py); the leveler stays on."""
    return AudioSettings(denoise=DenoiseSettings(mode="off"), **kw)


def episode(*recordings: Path) -> EpisodeConfig:
    """A minimal episode over ``recordings``, for calling the audio stage directly."""
    return EpisodeConfig(
        id="ep-1",
        number=1,
        title="t",
        publish_date="2026-01-01",  # type: ignore[arg-type]
        hosts=[{"name": "Host"}],  # type: ignore[list-item]
        summary="s",
        recordings=recordings,
    )


def storage_settings(endpoint_url: str | None, **kw: Any) -> StorageSettings:
    """Settings for the test bucket (small multipart sizes so tests can cross the threshold cheaply)."""
    base: dict[str, Any] = {
        "endpoint_url": endpoint_url,
        "bucket": BUCKET if endpoint_url else None,
        "prefix": "podcast",
        "multipart_threshold_mb": 5,
        "multipart_chunk_mb": 5,
        "connect_timeout_s": 2.0,
        "read_timeout_s": 10.0,
        "max_attempts": 4,
    }
    base.update(kw)
    return StorageSettings(**base)


def make_show(storage: StorageSettings, *, title: str = "Test Show", artwork: Path = COVER, **info: Any) -> ShowConfig:
    """A complete show config for publishing tests (two hosts, markup in the description)."""
    fields: dict[str, Any] = {
        "title": title,
        "description": "A show for tests & checks <with markup>.",
        "author": "Test Author",
        "owner_name": "Test Owner",
        "owner_email": "owner@example.org",
        "artwork": artwork,
        "website": "https://example.org/",
        "feed_url": "https://media.example.org/podcast/feed.xml",
        "copyright": "© 2026 Test",
        "hosts": (Person(name="Lara Varpio"), Person(name="Jason Frank")),
    }
    fields.update(info)
    return ShowConfig(show=ShowInfo(**fields), storage=storage, feed=FeedSettings())
