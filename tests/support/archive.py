"""An old podcast host for the archive tests: a feed of short real-speech episodes served by the fake HTTP host.

The episodes are stretches of jfk.wav (11 s of real speech) encoded to MP3, each a few seconds long, so Whisper has
words to find and a batch stays cheap.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import html
import subprocess
from dataclasses import dataclass

from keylime_prod import ffmpeg
from support.http import FakeHost
from support.media import DATA


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


def feed_xml(host: FakeHost, episodes: list[OldEpisode], *, extra_items: str = "") -> str:
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


def make_old_episodes(host: FakeHost, n: int = 4) -> list[OldEpisode]:
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
