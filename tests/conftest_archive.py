"""Fixtures for the archive tests: an old host (real HTTP on 127.0.0.1) serving a feed of short real-speech episodes.

Loaded from tests/conftest.py through ``pytest_plugins``. The episodes are stretches of jfk.wav (11 s of real
speech) encoded to MP3, each a few seconds long, so Whisper has words to find and the batch stays cheap.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import html
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from httpserver import OldHost

from keylime_prod import ffmpeg

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class OldEpisode:
    """One item of the old feed."""

    guid: str
    title: str
    number: int | None
    date: dt.datetime
    path: str
    mp3: bytes
    season: int | None = None
    duration: str | None = None
    explicit: bool = False


#: (start s, length s, gain dB) of jfk.wav per old episode: different audio, so different objects.
CLIPS = ((0.0, 4.0, -3.0), (3.5, 4.0, 0.0), (6.5, 4.5, -6.0), (1.0, 5.0, -1.5), (5.0, 3.5, -4.0), (0.3, 3.0, 0.0))


def old_mp3(start: float, length: float, gain_db: float) -> bytes:
    """A stretch of jfk.wav as a 44.1 kHz stereo 96 kbps MP3 (an old host's encode), returned as bytes."""
    proc = subprocess.run(
        [
            ffmpeg.binary(), "-hide_banner", "-nostdin", "-v", "error",
            "-ss", f"{start}", "-t", f"{length}", "-i", str(DATA / "jfk.wav"),
            "-af", f"volume={gain_db}dB", "-ar", "44100", "-ac", "2", "-c:a", "libmp3lame", "-b:a", "96k",
            "-map_metadata", "-1", "-f", "mp3", "-",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return proc.stdout


def feed_xml(host: OldHost, episodes: list[OldEpisode], *, extra_items: str = "") -> str:
    """An RSS 2.0 + iTunes feed of ``episodes`` as an old host would serve it (newest first)."""
    items = []
    for e in sorted(episodes, key=lambda e: e.date, reverse=True):
        num = f"<itunes:episode>{e.number}</itunes:episode>" if e.number is not None else ""
        season = f"<itunes:season>{e.season}</itunes:season>" if e.season is not None else ""
        dur = f"<itunes:duration>{e.duration}</itunes:duration>" if e.duration else ""
        items.append(
            f"""<item>
  <title>{html.escape(e.title)}</title>
  <guid isPermaLink="false">{html.escape(e.guid)}</guid>
  <pubDate>{email.utils.format_datetime(e.date)}</pubDate>
  <description>&lt;p&gt;About {html.escape(e.title)} &amp;amp; more.&lt;/p&gt;</description>
  <link>https://old.example.org/{e.path}</link>
  <enclosure url="{host.url(e.path)}" length="{len(e.mp3)}" type="audio/mpeg"/>
  <itunes:explicit>{"yes" if e.explicit else "clean"}</itunes:explicit>{num}{season}{dur}
</item>"""
        )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">
<channel>
<title>Old Show</title>
<link>https://old.example.org/</link>
<description>The show before keylime-prod.</description>
<itunes:author>Old Host Author</itunes:author>
{"".join(items)}
{extra_items}
</channel>
</rss>
"""


@pytest.fixture
def old_host() -> Iterator[OldHost]:
    """A running old host on 127.0.0.1, stopped afterwards."""
    host = OldHost().start()
    try:
        yield host
    finally:
        host.stop()


def make_old_episodes(host: OldHost, n: int = 4) -> list[OldEpisode]:
    """``n`` short episodes served by ``host``: numbered ones, one titled only, guids of several styles."""
    base = dt.datetime(2019, 3, 5, 6, 0, tzinfo=dt.timezone.utc)
    out = []
    for i in range(n):
        start, length, gain = CLIPS[i]
        number = None if i == 2 else 100 + i
        title = "A talk about courage: the JFK clip" if number is None else f"Episode {number}: clip {i + 1}"
        guid = f"https://old.example.org/?p={4000 + i}" if i % 2 else f"tag:old.example.org,2019:{i}"
        path = f"media/ep{i}.mp3"
        mp3 = old_mp3(start, length, gain)
        host.put(path, mp3, "audio/mpeg")
        out.append(
            OldEpisode(
                guid,
                title,
                number,
                base + dt.timedelta(days=7 * i),
                path,
                mp3,
                duration=f"00:00:0{int(length)}",
                explicit=i == 3,
            )
        )
    return out


@pytest.fixture
def old_feed(old_host: OldHost) -> tuple[str, list[OldEpisode]]:
    """The URL of an old feed of four short episodes, and the episodes."""
    episodes = make_old_episodes(old_host, 4)
    url = old_host.put("feed.xml", feed_xml(old_host, episodes).encode(), "application/rss+xml")
    return url, episodes


class DaskProcesses:
    """A real ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1 (no nanny: a killed worker stays dead)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.scheduler_file = folder / "scheduler.json"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workers: dict[str, int] = {}  # address -> pid
        self.address = ""

    def _spawn(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        out = open(self.folder / log, "wb")  # noqa: SIM115 - closed with the process
        dask = Path(sys.executable).parent / "dask"
        proc = subprocess.Popen([str(dask), *args], stdout=out, stderr=subprocess.STDOUT, cwd=self.folder)
        self.procs.append(proc)
        return proc

    def start(self, n_workers: int = 2) -> DaskProcesses:
        from distributed import Client

        self._spawn(
            "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
            "--scheduler-file", str(self.scheduler_file), log="scheduler.log",
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not self.scheduler_file.is_file():
            if time.monotonic() > deadline:
                raise RuntimeError("dask scheduler did not start: " + (self.folder / "scheduler.log").read_text())
            time.sleep(0.1)
        self.address = json.loads(self.scheduler_file.read_text())["address"]
        for i in range(n_workers):
            self._spawn(
                "worker", "--scheduler-file", str(self.scheduler_file), "--host", "127.0.0.1", "--nthreads", "1",
                "--nworkers", "1", "--no-nanny", "--no-dashboard", "--name", f"w{i}", log=f"worker-{i}.log",
            )  # fmt: skip
        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(n_workers, timeout=90)
            self.workers = {addr: int(pid) for addr, pid in client.run(os.getpid).items()}
        return self

    def kill_worker(self, address: str) -> None:
        """SIGKILL one worker process: no goodbye to the scheduler, its running task dies with it."""
        os.kill(self.workers[address], signal.SIGKILL)

    def stop(self) -> None:
        for proc in reversed(self.procs):  # workers first, the scheduler last; only the processes we started
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def dask_processes(tmp_path: Path, aws_env: dict[str, str]) -> Iterator[DaskProcesses]:
    """A scheduler and two one-thread workers, started after the AWS test keys are in the environment they inherit."""
    folder = tmp_path / "dask"
    folder.mkdir()
    procs = DaskProcesses(folder)
    try:
        yield procs.start(2)
    finally:
        procs.stop()
