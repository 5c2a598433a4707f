#!/usr/bin/env python3
"""Make ``docs/report-375.png`` and ``docs/report-1280.png``: the production report of the multitrack demo as a phone
and a desktop show it.

Masters and transcribes the committed demo (``configs/raw/multitrack-demo/``, three tracks, one a speaker), finds
its cut candidates on the master (``keylime_prod.edit.find_cuts`` with the transcript's words), writes the report
through the pipeline, and photographs the top of the page in headless Chromium (Playwright, Debian's
``/usr/bin/chromium``) at 375 and 1280 px wide. The pictures are reduced to 64 colours so they stay small.

    python scripts/make_report_screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from keylime_prod.config import load_settings  # noqa: E402
from keylime_prod.edit import find_cuts, write_cuts  # noqa: E402
from keylime_prod.pipeline import run_episode  # noqa: E402
from keylime_prod.transcript.artefact import read_words  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
#: Each picture: the page's width, from which heading down, and how tall (a phone: the plots and the tracks; a
#: desktop: the top of the page, player, summary and the loudness plot).
SHOTS = {375: ("Loudness over time", 1700), 1280: ("", 1500)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    args = ap.parse_args()
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="keylime-report-shots-") as tmp:
        settings = load_settings(REPO / "configs", build_root=Path(tmp))
        layout = settings.layout("multitrack-demo")
        run_episode(settings, "multitrack-demo", upto="transcribe")
        master = layout.master_mp3
        write_cuts(layout.cuts_json, find_cuts(read_words(layout.words_json), master, settings.show.edit))
        run_episode(settings, "multitrack-demo", upto="report")  # cuts.json is part of its key: written again
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for width, (heading, height) in SHOTS.items():
                page = browser.new_page(viewport={"width": width, "height": 800})
                page.goto(layout.report_html.as_uri())
                top = page.locator("h2", has_text=heading).bounding_box() if heading else None
                y = top["y"] - 8 if top else 0
                png = page.screenshot(full_page=True, clip={"x": 0, "y": y, "width": width, "height": height})
                out = args.out / f"report-{width}.png"
                Image.open(io.BytesIO(png)).convert("RGB").quantize(64).save(out, optimize=True)
                print(f"{out}: {out.stat().st_size // 1024} KiB")
                page.close()
            browser.close()


if __name__ == "__main__":
    main()
