"""``produce review``: a real episode (the edit_sense.flac reading, Whisper tiny.en) served on 127.0.0.1 and driven in
the system's headless Chromium with Playwright: play from a word, fix it, keep a cut, rename a speaker, move a
chapter, apply; then the edit files are read back with tomllib and the rebuilt transcript checked, with Whisper
made to fail if it were called. Keyboard use, the accessibility tree and the layout at 375 and 1280 px are checked
on the same server; the security model and Range requests in the fast tier (tests/test_review_server.py)."""

from __future__ import annotations

import http.client
import json
import math
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import configs, media, procs
from support.http import get_with_host

from keylime_prod import timecode
from keylime_prod.audio.artefact import Master
from keylime_prod.config import Settings, load_settings, tomllib
from keylime_prod.edit import find_cuts, write_cuts
from keylime_prod.edit.artefact import Cuts, read_cuts
from keylime_prod.pipeline import STAGE_BY_NAME, stages_up_to
from keylime_prod.review import Review, ReviewServer, build_for_review
from keylime_prod.review.model import published
from keylime_prod.transcript import engines
from keylime_prod.transcript.artefact import read_words

pytestmark = pytest.mark.whisper

CHROMIUM = Path("/usr/bin/chromium")
#: No network, no first-run, no GPU: the browser talks only to the page's server.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
EP = "ep-1"
#: Screenshots for docs/review.md are written here too when the variable is set.
SHOTS_ENV = "KEYLIME_REVIEW_SCREENSHOTS"


@dataclass
class Built:
    settings: Settings
    configs: Path
    build: Path
    cuts: Cuts


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    root = tmp_path_factory.mktemp("review")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KEYLIME_CACHE_DIR", str(root / "model-cache"))
        rec = root / "reading.flac"
        shutil.copy(media.DATA / "edit_sense.flac", rec)
        cfg = root / "configs"
        show = configs.show_config(
            audio={"denoise": {"mode": "off"}},
            whisper={"model": "tiny.en", "compute_type": "float32", "threads": 1, "glossary": ["John Dashwood"]},
        )
        configs.write_show(cfg, show)
        episode = configs.episode_config(
            [rec], EP, speakers=("Speaker 1",),
            chapters=({"title": "Opening", "start": 0.0}, {"title": "The sisters", "start": 15.0}),
        )  # fmt: skip
        path = configs.write_episode(cfg, episode)
        # A producer's comment, which a chapter move must keep.
        path.write_text("# Written by hand: keep me.\n" + path.read_text("utf-8"), "utf-8")
        settings = load_settings(cfg, root / "build")
        build_for_review(settings, EP)
        layout = settings.layout(EP)
        if not layout.cuts_json.is_file():
            # Without a stage that writes cuts.json, the candidates are found on the master here, as it would.
            words = read_words(layout.words_json)
            write_cuts(layout.cuts_json, find_cuts(words, Master.load(layout.master_json).mp3, settings.show.edit))
            build_for_review(settings, EP)  # the report lists the cut candidates
        cuts = read_cuts(layout.cuts_json)
        assert cuts.candidates, "edit_sense.flac holds pauses, hesitations and a retake"
        yield Built(settings, cfg, layout.root, cuts)


@pytest.fixture(scope="module")
def server(built: Built) -> Iterator[ReviewServer]:
    review = Review(built.settings, EP, lambda: build_for_review(built.settings, EP))
    with ReviewServer(review) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, server: ReviewServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server.url)
    yield pg
    context.close()
    assert not errors, errors


def _get(server: ReviewServer, path: str, host: str | None = None, **headers: str) -> http.client.HTTPResponse:
    return get_with_host(server.address, path, host, **headers)


def _status(page: Any, text: str) -> None:
    page.wait_for_function("t => document.getElementById('status').textContent.includes(t)", arg=text, timeout=30_000)


# ------------------------------------------------------------------------------------------------- security


def test_waveform_and_loudness_are_the_masters(server: ReviewServer, built: Built) -> None:
    """The page draws and plays the master as it will be published: with the edit's cuts applied."""
    master, moved = published(built.settings.layout(EP))
    assert moved is not None and moved.cuts, "the long pauses of edit_sense.flac are cut by default"
    assert master.duration < Master.load(built.build / "master.json").duration - 2.0
    doc = json.loads(_get(server, f"/{server.token}/peaks.json").read())
    peaks = doc["peaks"]
    assert doc["duration"] == master.duration and len(peaks) == math.ceil(master.duration * 20)
    # The longest pause found, shortened to its natural length at the join, is quiet in the peaks.
    pause = max((c for c in built.cuts.candidates if c.kind == "pause"), key=lambda c: c.end - c.start)
    join = moved.time(pause.start)
    inside = peaks[math.ceil((join - 0.2) * 20) : math.floor((join + 0.2) * 20)]
    assert inside and max(inside) < 0.1 * max(peaks), (pause, join, inside)
    page = _get(server, f"/{server.token}/").read().decode()
    out = master.output_loudness
    assert f"after {out.integrated_lufs:.1f} LUFS; true peak after {out.true_peak_dbtp:.1f} dBTP" in page
    assert page.count("<polyline") == 2


def test_the_command_builds_serves_and_stops_on_ctrl_c(built: Built) -> None:
    """`produce review EPISODE --no-open` as a producer runs it: the stages are cached, the URL is printed, the page is
    served at it and nowhere else, Ctrl-C ends it with exit 0 and the JSON document."""
    env = {**os.environ, "KEYLIME_CACHE_DIR": str(built.build.parent.parent / "model-cache")}
    argv = [sys.executable, "-m", "keylime_prod", "review", EP, "--no-open", "--json",
            "--configs", str(built.configs), "--build-dir", str(built.build.parent)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
                            preexec_fn=procs.sigint_default)  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            # --json keeps stdout for the one document; the URL is on stderr, for the person who started it.
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert proc.poll() is None, "produce review ended early"
                continue
            url = re.search(r"review page: (http://127\.0\.0\.1:(\d+)/([\w-]+)/)", line)
        assert url is not None, "no URL printed"
        conn = http.client.HTTPConnection("127.0.0.1", int(url.group(2)), timeout=10)
        conn.request("GET", f"/{url.group(3)}/")
        r = conn.getresponse()
        assert r.status == 200 and "Review: 1. Test episode" in r.read().decode()
        conn = http.client.HTTPConnection("127.0.0.1", int(url.group(2)), timeout=10)
        conn.request("GET", "/")
        assert conn.getresponse().status == 403
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            said = []
            while not lines.empty():
                said.append(lines.get())
            pytest.fail(
                f"produce review still running 30 s after Ctrl-C; its last words: {said[-10:]}; "
                f"this test's own SIGINT handler: {signal.getsignal(signal.SIGINT)!r}"
            )
    assert proc.returncode == 0, out
    doc = json.loads(out)
    assert doc["episode"] == EP and all(s["cached"] for s in doc["stages"]), doc
    assert [s["name"] for s in doc["stages"]] == stages_up_to(*STAGE_BY_NAME["publish"].needs)  # all but publish
    assert "publish" not in [s["name"] for s in doc["stages"]]


# ------------------------------------------------------------------------------------------ layout, keyboard


@pytest.mark.parametrize("width", [375, 1280])
def test_readable_at_phone_and_desktop_widths(page: Any, width: int, tmp_path: Path) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.reload()
    page.wait_for_function("() => document.querySelector('#waveform canvas, #waveform div')")
    over = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert over[0] <= over[1], over
    shot = tmp_path / f"review-{width}.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get(SHOTS_ENV):
        shutil.copy(shot, Path(os.environ[SHOTS_ENV]) / shot.name)


def test_every_control_is_named_and_reached_by_keyboard(page: Any, built: Built) -> None:
    tree = page.locator("body").aria_snapshot()
    assert not re.search(r"^\s*- (button|textbox|radio|checkbox|link)\s*(:|$)", tree, re.M), tree
    for name in ('button "Apply and rebuild"', 'textbox "Name for “Speaker 1”"', 'radio "Keep"',
                 'textbox "Start of “The sisters”"', 'button "Listen without it"'):  # fmt: skip
        assert name in tree, (name, tree)
    assert re.search(r'group "Speaker 1 at 00:00:\d\d"', tree), tree

    # Tab through the page once: every control must be reached (the transcript's words by one stop per paragraph,
    # a radio group by one stop, as the browser does).
    expected = page.evaluate("""() => {
        const all = [...document.querySelectorAll('a[href], button, input, audio[controls]')]
            .filter(e => !e.closest('[hidden]') && e.tabIndex >= 0);
        const groups = new Map();
        let n = 0;
        for (const e of all) {
            if (e.type === 'radio') {
                if (!groups.has(e.name)) groups.set(e.name, n++);
                e.dataset.stop = groups.get(e.name);
            } else {
                e.dataset.stop = n++;
            }
        }
        return n;
    }""")
    reached = set()
    for _ in range(expected + 40):
        page.keyboard.press("Tab")
        stop = page.evaluate("() => document.activeElement.dataset.stop")
        if stop is not None:
            reached.add(int(stop))
    missed = page.evaluate(
        "r => [...document.querySelectorAll('[data-stop]')].filter(e => !r.includes(+e.dataset.stop))"
        ".map(e => e.outerHTML.slice(0, 80))",
        sorted(reached),
    )
    assert reached == set(range(expected)), missed

    # Operate with the keyboard alone: the first paragraph's word two to the right plays and opens for correction.
    page.evaluate("() => document.body.focus()")
    page.focus(".para button.w[tabindex='0']")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    word = page.evaluate("() => ({i: +document.activeElement.dataset.i, s: +document.activeElement.dataset.s})")
    page.keyboard.press("Enter")
    t = page.evaluate("() => document.getElementById('player').currentTime")
    assert abs(t - word["s"]) < 0.3, (t, word)
    assert page.is_visible("#editor")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "meant"
    page.keyboard.press("Escape")
    assert page.is_hidden("#editor")
    assert page.evaluate("() => +document.activeElement.dataset.i") == word["i"]
    # A cut's preview starts 2 s before it, on Space.
    first = built.cuts.candidates[0]
    page.focus("fieldset.cut .play-with")
    page.keyboard.press("Space")
    t = page.evaluate("() => document.getElementById('player').currentTime")
    assert abs(t - max(0.0, first.start - 2)) < 0.3, (t, first)


def test_least_sure_words_and_glossary_terms_are_marked(page: Any, built: Built) -> None:
    words = read_words(built.build / "words.json")
    unsure = page.eval_on_selector_all(".para .w.unsure", "els => els.map(e => +e.dataset.i)")
    assert unsure == [i for i, w in enumerate(words) if w.probability < 0.6]
    listed = page.eval_on_selector_all(".checklist .jump", "els => els.map(e => +e.dataset.i)")
    assert listed == sorted(unsure, key=lambda i: (words[i].probability, words[i].start))[:30]
    # The reading names "John Dashwood" (the show's glossary here): every word that spells it is marked, and only
    # the words of the glossary's terms (the host's name among them) are.
    terms = page.eval_on_selector_all(".para .w.term", "els => els.map(e => +e.dataset.i)")
    plain = [re.sub(r"\W", "", w.word).lower() for w in words]
    dashwood = [i for i, w in enumerate(plain) if w == "dashwood"]
    assert dashwood and set(dashwood) <= set(terms), (dashwood, terms)
    assert all(plain[i] in {"john", "dashwood", "lara", "varpio"} for i in terms), [words[i] for i in terms]
    described = page.eval_on_selector_all(
        ".para .w.unsure", "els => els.every(e => e.getAttribute('aria-describedby').includes('legend-unsure'))"
    )
    assert described


# ------------------------------------------------------------------------------------ decisions and apply


def test_decide_apply_and_the_files_hold_it(
    page: Any, built: Built, server: ReviewServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = built.configs / "episodes"
    words = read_words(built.build / "words.json")
    k = next(i for i, w in enumerate(words) if w.start > 5.0 and len(w.word.strip(".,!?;:")) > 3)
    heard = words[k].word

    # Play from a word: the player jumps to it and plays.
    page.click(f'button.w[data-i="{k}"]')
    t = page.evaluate("() => document.getElementById('player').currentTime")
    assert abs(t - words[k].start) < 0.3, (t, words[k])
    page.wait_for_function(
        "s => !document.getElementById('player').paused && document.getElementById('player').currentTime > s + 0.2",
        arg=words[k].start, timeout=15_000,
    )  # fmt: skip

    # Fix it.
    page.fill("#meant", "Lingart")
    page.click("#editor button[type=submit]")
    _status(page, f"Saved to {EP}.corrections.toml")
    # Fixed again before Apply: the second entry corrects what the first one left.
    page.click(f'button.w[data-i="{k}"]')
    page.evaluate("() => document.getElementById('status').textContent = ''")
    page.fill("#meant", "Lingard")
    page.click("#editor button[type=submit]")
    _status(page, f"Saved to {EP}.corrections.toml")

    # Keep (reject) the first proposed cut.
    cut = built.cuts.candidates[0]
    page.check(f'fieldset.cut[data-id="{cut.id}"] input[value="keep"]')
    _status(page, f"Saved to {EP}.cuts.toml")

    # Rename the speaker.
    page.fill('form.speaker[data-label="Speaker 1"] input', "Lara Varpio")
    page.click('form.speaker[data-label="Speaker 1"] button[type=submit]')
    _status(page, f"Saved to {EP}.speakers.toml")

    # Move the second chapter 2 s later on the published timeline.
    field = page.locator("#chapter-1")
    was = timecode.parse(field.input_value())
    field.fill(timecode.hms_ms(was + 2.0)[:-2])
    page.click('form.chapter[data-index="1"] button[type=submit]')
    _status(page, f"Saved to {EP}.toml")

    # Apply, with Whisper made to fail if anything called it.
    heard_json = built.build / "heard.json"
    before = heard_json.read_bytes(), heard_json.stat().st_mtime_ns

    def no_whisper(*a: Any, **kw: Any) -> Any:
        raise AssertionError("Whisper ran again")

    for engine in ("FasterWhisperEngine", "OpenAIWhisperEngine"):
        monkeypatch.setattr(engines, engine, no_whisper)
    with page.expect_navigation(timeout=120_000):
        page.click("#apply")
    _status(page, "Applied in")
    status = page.text_content("#status")
    assert "transcribe" in status and "recognise" not in status, status
    assert (heard_json.read_bytes(), heard_json.stat().st_mtime_ns) == before

    # The page shows the result.
    assert page.text_content(f'button.w[data-i="{k}"]') == "Lingard" + heard[len(heard.rstrip(".,!?;:")) :]
    assert page.locator(".para .speaker").first.text_content() == "Lara Varpio"

    # The edit files, as the pipeline reads them.
    corrections = tomllib.loads((cfg / f"{EP}.corrections.toml").read_text("utf-8"))
    at = timecode.hms_ms(words[k].start)
    lingart = "Lingart" + heard[len(heard.rstrip(".,!?;:")) :]  # the punctuation the recogniser put there stays
    assert corrections["corrections"] == [
        {"at": at, "heard": heard, "meant": "Lingart"},
        {"at": at, "heard": lingart, "meant": "Lingard"},
    ]
    cuts = tomllib.loads((cfg / f"{EP}.cuts.toml").read_text("utf-8"))
    assert cuts.get("reject") == [cut.id] and not cuts.get("accept")
    names = tomllib.loads((cfg / f"{EP}.speakers.toml").read_text("utf-8"))
    assert names == {"names": {"Speaker 1": "Lara Varpio"}}
    text = (cfg / f"{EP}.toml").read_text("utf-8")
    assert text.startswith("# Written by hand: keep me.\n")
    episode = tomllib.loads(text)
    master = published(built.settings.layout(EP))[0]  # the page's timeline: the master with the cuts applied
    moved = timecode.parse(episode["chapters"][1]["start"])
    assert abs(master.body_to_episode(moved) - (was + 2.0)) < 0.1, (moved, was)
    assert episode["chapters"][0] == {"title": "Opening", "start": 0.0}

    # The rebuilt outputs.
    after = read_words(built.build / "words.json")
    assert after[k].word.startswith("Lingard") and after[k].probability == 1.0 and after[k].speaker == "Lara Varpio"
    txt = (built.build / "transcript.txt").read_text("utf-8")
    assert "Lingard" in txt and "Lara Varpio" in txt and "Speaker 1" not in txt
    marks = json.loads((built.build / "chapters.json").read_text("utf-8"))["chapters"]
    sisters = next(m for m in marks if m["title"] == "The sisters")
    assert abs(sisters["startTime"] - (was + 2.0)) < 0.1, marks
