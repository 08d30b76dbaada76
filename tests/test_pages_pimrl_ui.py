"""Browser tests of the Rollout and Error-accumulation pages (Playwright + Debian Chromium).

Run as a script to measure streaming rates (frames delivered per second, as the page reports them,
plus websocket messages seen by the browser) on the served app:

    python tests/test_pages_pimrl_ui.py [--system burgers2d] [--models rk4] [--steps 40] [--substeps 1]
"""

from __future__ import annotations

import io
import os
import re
import time

import numpy as np
import pytest

try:
    from core.surrogates import MODELS
except ImportError:  # before core.surrogates
    from core.pimrl import MODELS
from core.baselines.numerical import SCHEMES

#: the model check boxes both pages offer
CHOICES = MODELS + SCHEMES


def _pixels(png: bytes) -> tuple[float, int]:
    """(std of the pixel values, number of distinct colours) of a PNG screenshot."""
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    return float(img.std()), len(np.unique(img.reshape(-1, 3), axis=0))


def _save(page, name: str) -> None:
    """Keep a full-page screenshot in $WORKBENCH_SCREENSHOTS (for a person to look at)."""
    page.screenshot(path=os.path.join(os.environ["WORKBENCH_SCREENSHOTS"], name), full_page=True)


def _wait_for(measure, ok, timeout_s: float = 30.0):
    """Re-measure until `ok(result)` or the timeout (a condition, not a fixed sleep); the last result."""
    deadline = time.monotonic() + timeout_s
    result = measure()
    while not ok(result) and time.monotonic() < deadline:
        time.sleep(0.2)
        result = measure()
    return result


def _open_tab(page, url: str, title: str) -> None:
    page.goto(url)
    tab = page.locator(".bk-tab", has_text=title)  # Bokeh tab headers carry no ARIA role
    tab.first.wait_for(timeout=60_000)
    tab.first.click()
    page.get_by_role("button", name="Start" if title == "Rollout" else "Compute").wait_for(timeout=60_000)


def _choose_models(page, wanted: list[str], choices: tuple[str, ...]) -> None:
    for name in choices:
        box = page.get_by_role("checkbox", name=name, exact=True)
        if box.is_checked() != (name in wanted):
            box.click()


def _type(page, label: str, value) -> None:
    box = page.get_by_role("textbox", name=label, exact=True)
    box.fill(str(value))
    box.press("Enter")


def setup_rollout(page, url: str, system: str, models: list[str], steps: int, substeps: int = 1,
                  rate: int | None = None) -> None:
    """Open the Rollout tab and set quick-look data, models, steps, sub-steps and the display rate."""
    _open_tab(page, url, "Rollout")
    page.get_by_role("combobox").first.select_option(system)
    page.get_by_text("quick look", exact=True).click()
    _choose_models(page, models, CHOICES)
    _type(page, "steps", steps)
    _type(page, "scheme sub-steps per frame (dt = Δt/m)", substeps)
    if rate is not None:
        page.locator('select:has(option:text-is("12"))').select_option(str(rate))
    steps_box = page.get_by_role("textbox", name="steps", exact=True)
    _wait_for(steps_box.input_value, lambda v: v == str(steps))


def status(page):
    return page.locator(".wb-rollout-status").first


def run_rollout(page, url: str, system: str, models: list[str], steps: int, substeps: int,
                timeout_s: float = 240) -> dict:
    """Drive the Rollout page: quick-look data, chosen models, Start; wait until done.

    Returns the page's reported frames/s, wall time, websocket messages received and the status."""
    messages: list[float] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda _f: messages.append(time.perf_counter())))
    setup_rollout(page, url, system, models, steps, substeps)
    t0 = time.perf_counter()
    page.get_by_role("button", name="Start").click()
    done = page.get_by_text(re.compile(r"(done|stopped) after \d+ steps"))
    done.wait_for(timeout=timeout_s * 1000)
    wall = time.perf_counter() - t0
    text = done.inner_text()
    fps = float(re.search(r"([\d.]+) frames/s", text).group(1))
    return {"status": text, "fps": fps, "wall_s": wall, "ws_messages": len(messages)}


@pytest.mark.ui
@pytest.mark.timeout(300)
def test_rollout_page_puts_live_frames_on_screen(page, served_app):
    result = run_rollout(page, served_app, "burgers2d", ["euler", "rk4"], steps=20, substeps=1)
    assert "done after 20 steps" in result["status"]
    assert result["fps"] > 0
    page.set_viewport_size({"width": 1400, "height": 1800})  # every view on screen (below the fold
    # a canvas is not painted, so its pixels cannot be read)
    for title in ("truth", "euler", "|error| euler"):  # the region under each view's caption
        def shot(title=title):
            box = page.get_by_text(title, exact=True).first.bounding_box()
            clip = {"x": box["x"], "y": box["y"] + 25, "width": 420, "height": 280}
            return _pixels(page.screenshot(clip=clip))
        # an image of a flow, not a blank canvas (|error| on log colours has fewer distinct colours)
        std, colours = _wait_for(shot, lambda r: r[0] > 20 and r[1] > 100)
        assert std > 20 and colours > 100, (title, std, colours)
    assert page.get_by_text(re.compile(r"t = 0\.2 · step 20 of 20")).is_visible()
    if os.environ.get("WORKBENCH_SCREENSHOTS"):
        _save(page, "rollout_page.png")
    assert page.js_errors == []


@pytest.mark.ui
@pytest.mark.timeout(300)
def test_rollout_scrubber_shows_after_an_uninterrupted_run_and_while_paused(page, served_app):
    setup_rollout(page, served_app, "kdv1d", ["rk4"], steps=40, substeps=20, rate=2)
    scrubber = page.locator(".wb-scrubber").first
    page.get_by_role("button", name="Start").click()
    page.get_by_text("done after 40 steps").wait_for(timeout=180_000)
    scrubber.wait_for(state="visible", timeout=10_000)  # after an uninterrupted run
    page.get_by_role("button", name="Start").click()
    page.get_by_text(re.compile(r"step [1-9]\d* of 40")).first.wait_for(timeout=120_000)
    page.get_by_role("button", name="Pause").click()
    page.get_by_role("button", name="Resume").wait_for(timeout=20_000)
    scrubber.wait_for(state="visible", timeout=10_000)  # while paused
    page.get_by_role("button", name="Stop").click()
    page.get_by_text(re.compile(r"stopped after \d+ steps")).wait_for(timeout=60_000)
    assert scrubber.is_visible() and page.js_errors == []


@pytest.mark.ui
@pytest.mark.timeout(300)
def test_error_page_draws_curves(page, served_app):
    _open_tab(page, served_app, "Error accumulation")
    page.locator("input[type=checkbox]:visible").first.check()  # quick look (4 fresh test trajectories)
    _choose_models(page, ["euler", "rk4"], CHOICES)
    page.get_by_role("button", name="Compute").click()
    page.get_by_role("cell", name="rk4 (dt=Δt)").wait_for(timeout=240_000)
    plot = page.locator(".wb-error-plot").first
    std, colours = _wait_for(lambda: _pixels(plot.screenshot()), lambda r: r[0] > 10 and r[1] > 30)
    assert std > 10 and colours > 30, (std, colours)
    # what the check box promised (4 fresh test trajectories) is what was scored
    caption = page.get_by_text(re.compile(r"^Δt = ")).first.inner_text()
    assert "4 test trajectories" in caption, caption
    # never diverged reads "never", not "0"
    row = page.get_by_role("row", name=re.compile(r"rk4 \(dt=Δt\)"))
    assert "never" in row.inner_text() and page.get_by_role("cell", name="0", exact=True).count() == 0
    if os.environ.get("WORKBENCH_SCREENSHOTS"):
        _save(page, "error_page.png")
    assert page.js_errors == []


@pytest.mark.ui
@pytest.mark.timeout(420)
def test_four_sessions_are_isolated_and_a_closed_one_stops_its_work(browser, served_app):
    """Two sessions roll out, a third starts and is closed mid-run, a fourth watches the server's count
    of background tasks: it drops by one when the third tab closes while the other two keep going
    and finish their own runs."""
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(4)]
    try:
        a, b, c, d = (ctx.new_page() for ctx in contexts)
        for pg in (a, b, c):  # slow display (2 frames/s) keeps each run going for ~20 s
            setup_rollout(pg, served_app, "kdv1d", ["rk4"], steps=40, substeps=20, rate=2)
        _open_tab(d, served_app, "Rollout")
        count = d.get_by_text(re.compile(r"server: \d+ background task")).first

        def tasks() -> int:
            return int(re.search(r"(\d+) background", count.inner_text()).group(1))

        for pg in (a, b, c):
            pg.get_by_role("button", name="Start").click()
        for pg in (a, b, c):
            pg.get_by_text(re.compile(r"step [1-9]\d* of 40")).first.wait_for(timeout=180_000)
        assert _wait_for(tasks, lambda n: n == 3) == 3
        step_a = a.get_by_text(re.compile(r"step \d+ of 40")).first.inner_text()
        contexts[2].close()  # the third tab goes away mid-run
        assert _wait_for(tasks, lambda n: n == 2, timeout_s=30) == 2  # its work stopped
        # the other two keep running: later frames arrive, and both finish their own 40 steps
        assert _wait_for(lambda: a.get_by_text(re.compile(r"step \d+ of 40")).first.inner_text(),
                         lambda t: t != step_a) != step_a
        for pg in (a, b):
            pg.get_by_text("done after 40 steps").wait_for(timeout=180_000)
        assert _wait_for(tasks, lambda n: n == 0) == 0
    finally:
        for ctx in contexts:
            try:
                ctx.close()
            except Exception:  # the third was closed on purpose
                pass


def _measure(argv: list[str] | None = None) -> None:
    """Serve the app, run the Rollout page in Chromium and print the streaming rate."""
    import argparse
    import os
    import socket
    import subprocess
    import sys
    import tempfile
    import urllib.request
    from pathlib import Path

    from playwright.sync_api import sync_playwright

    p = argparse.ArgumentParser(description="measure the Rollout page's delivered frame rate")
    p.add_argument("--system", default="burgers2d")
    p.add_argument("--models", default="rk4")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--substeps", type=int, default=1)
    p.add_argument("--screenshot", default="")
    args = p.parse_args(argv)
    repo = Path(__file__).resolve().parent.parent
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = dict(os.environ, WORKBENCH_CACHE=os.environ.get("WORKBENCH_CACHE", tempfile.mkdtemp()))
    cmd = [sys.executable, "-m", "panel", "serve", "app", "--address", "127.0.0.1", "--port", str(port),
           "--allow-websocket-origin", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/app"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            r = run_rollout(page, url, args.system, args.models.split(","), args.steps, args.substeps)
            if args.screenshot:
                page.wait_for_timeout(1500)
                page.screenshot(path=args.screenshot, full_page=True)
            browser.close()
        print(f"{args.system} models={args.models} steps={args.steps} substeps={args.substeps}: "
              f"{r['fps']:.1f} frames/s delivered (page), {r['wall_s']:.1f} s wall incl. data + models, "
              f"{r['ws_messages']} websocket messages, {len(errors)} JS errors")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    _measure()
