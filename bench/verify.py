"""``produce verify`` on a 300-episode feed against a loopback host that answers byte ranges (tests/support/http.py).

Lays out what a bucket holds for N episodes (a tagged 1 kHz MP3 at -16 LUFS per episode, four transcripts, a
chapters file, one shared cover) under a temp folder, builds the feed with keylime_prod.publish.feed, serves it on
127.0.0.1, then alternates rounds of

* verify:   ``release_check.check_live_feed`` over every item (HEAD + 1 KiB ranged GET per enclosure, HEAD per
            transcript, GET per chapters file, the artwork, the newest MP3 downloaded and measured with ffmpeg);
* baseline: one HEAD per enclosure, one after the other, with the same HTTP client: the least a checker can do;

and prints the median seconds of each, their ratio, and the requests made.

    python bench/release_check.py                  # 300 episodes, 3 rounds
    python bench/release_check.py --episodes 1000 --rounds 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from support.http import FakeHost  # noqa: E402

from keylime_prod import ffmpeg, fsutil  # noqa: E402
from keylime_prod.catalogue import release_check  # noqa: E402
from keylime_prod.config import FeedSettings, Person, ShowInfo  # noqa: E402
from keylime_prod.guids import item_guid  # noqa: E402
from keylime_prod.publish.feed import Manifest, ShowManifest, build_feed  # noqa: E402

COVER = REPO / "configs" / "assets" / "cover.jpg"
SHOW_GUID = "c6da6de0-a986-5d32-88a3-b033f83e4403"


def _file(role: str, fmt: str, key: str, path: Path, ctype: str) -> dict[str, object]:
    return {"role": role, "format": fmt, "name": path.name, "key": key, "size": path.stat().st_size,
            "sha256": "0" * 64, "content_type": ctype, "verified_by": "bench"}  # fmt: skip


def lay_out(root: Path, episodes: int) -> list[Manifest]:
    """The bucket's files for ``episodes`` episodes under ``root/podcast``, and their manifests."""
    mp3 = root / "tone.mp3"
    subprocess.run(
        [ffmpeg.binary(), "-v", "error", "-f", "lavfi", "-i", "sine=frequency=1000:duration=20:sample_rate=44100",
         "-af", "volume=1.884,aformat=channel_layouts=stereo", "-id3v2_version", "3",
         "-metadata", "title=Bench", str(mp3)],
        check=True,
    )  # fmt: skip
    art = root / "podcast" / "art" / "cover.jpg"
    art.parent.mkdir(parents=True)
    shutil.copyfile(COVER, art)
    out = []
    start = dt.datetime(2020, 1, 1, 6, tzinfo=dt.timezone.utc)
    for n in range(1, episodes + 1):
        eid = f"ep-{n}"
        folder = root / "podcast" / "episodes" / eid
        folder.mkdir(parents=True)
        os.link(mp3, folder / f"{eid}.mp3")
        files = [_file("audio", "mp3", f"podcast/episodes/{eid}/{eid}.mp3", folder / f"{eid}.mp3", "audio/mpeg")]
        for fmt, ctype, body in (
            ("vtt", "text/vtt", "WEBVTT\n\n00:00.000 --> 00:02.000\nHello.\n"),
            ("srt", "application/x-subrip", "1\n00:00:00,000 --> 00:00:02,000\nHello.\n"),
            ("json", "application/json", '{"version": "1.0.0", "segments": []}'),
            ("txt", "text/plain", "Hello.\n"),
        ):
            p = fsutil.write_text(folder / f"{eid}.{fmt}", body)
            files.append(_file("transcript", fmt, f"podcast/episodes/{eid}/{p.name}", p, ctype))
        ch = fsutil.write_text(folder / "chapters.1.json", '{"version": "1.2.0", "chapters": [{"startTime": 0}]}')
        files.append(_file("chapters", "json", f"podcast/episodes/{eid}/{ch.name}", ch, "application/json+chapters"))
        date = start + dt.timedelta(days=7 * n)
        chapters = [{"start": 0, "title": "Intro"}, {"start": 5, "title": "Paper"}, {"start": 15, "title": "Outro"}]
        out.append(
            Manifest.model_validate(
                {"episode_id": eid, "guid": item_guid(SHOW_GUID, eid), "first_published": date, "updated": date,
                 "item": {"title": f"Episode {n}", "summary": "A bench episode.", "publish_date": date,
                          "duration": 20.0, "number": n, "chapters": chapters},
                 "files": files}
            )
        )  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="keylime-bench-verify-") as tmp:
        root = Path(tmp)
        manifests = lay_out(root, args.episodes)
        with FakeHost(root) as host:
            base = host.base_url
            show = ShowInfo(
                title="Bench", description="Bench show.", author="A", owner_name="A", owner_email="a@example.org",
                artwork=COVER, website="https://example.org/", feed_url=f"{base}/podcast/feed.xml", copyright="c",
                hosts=(Person(name="Host"),),
            )  # fmt: skip
            cover = _file("cover", "jpg", "podcast/art/cover.jpg", root / "podcast/art/cover.jpg", "image/jpeg")
            sm = ShowManifest.model_validate({"podcast_guid": SHOW_GUID, "feed_url": show.feed_url, "artwork": cover})
            xml = build_feed(show, manifests, show_manifest=sm, url=lambda k: f"{base}/{k}", settings=FeedSettings())
            fsutil.write_bytes(root / "podcast" / "feed.xml", xml)
            urls = [f"{base}/{m.files[0].key}" for m in manifests]
            times: dict[str, list[float]] = {"verify": [], "baseline": []}
            result = None
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                result = release_check.check_live_feed(
                    show.feed_url, fetch=release_check.HttpFetcher(allow_private=True), audio=1
                )
                times["verify"].append(time.perf_counter() - t0)
                fetch = release_check.HttpFetcher(allow_private=True)
                t0 = time.perf_counter()
                for u in urls:
                    assert fetch.head(u).status == 200
                times["baseline"].append(time.perf_counter() - t0)
    assert result is not None
    med = {k: statistics.median(v) for k, v in times.items()}
    load = os.getloadavg()
    print(f"feed: {args.episodes} episodes, {len(xml) / 1024:.0f} KiB; load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    warnings = len(result.problems) - len(result.errors)
    print(f"verify:   {med['verify']:.2f} s median of {args.rounds} ({result.requests} requests, "
          f"{len(result.errors)} errors, {warnings} warnings, 1 MP3 measured)")  # fmt: skip
    print(f"baseline: {med['baseline']:.2f} s ({len(urls)} sequential HEADs)")
    print(f"ratio verify / baseline: {med['verify'] / med['baseline']:.2f}x")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    for p in result.problems[:5]:
        print("  " + p.line())


if __name__ == "__main__":
    main()
