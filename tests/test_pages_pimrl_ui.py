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

from core.baselines.numerical import SCHEMES
from core.pimrl import MODELS

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


def _open_tab(page, url: str, title: str) -> None:
    page.goto(url)
    tab = page.locator(".bk-tab", has_text=title)  # Bokeh tab headers carry no ARIA role
    tab.first.wait_for(timeout=60_000)
    tab.first.click()
    page.wait_for_timeout(1500)


def _choose_models(page, wanted: list[str], choices: tuple[str, ...]) -> None:
    for name in choices:
        box = page.get_by_role("checkbox", name=name, exact=True)
        if box.is_checked() != (name in wanted):
            box.click()


def run_rollout(page, url: str, system: str, models: list[str], steps: int, substeps: int,
                timeout_s: float = 240) -> dict:
    """Drive the Rollout page: quick-look data, chosen models, Start; wait until done.

    Returns the page's reported frames/s, wall time, websocket messages received and the status."""
    messages: list[float] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda _f: messages.append(time.perf_counter())))
    _open_tab(page, url, "Rollout")
    page.get_by_role("combobox").first.select_option(system)
    page.get_by_text("quick look", exact=True).click()
    _choose_models(page, models, CHOICES)
    inputs = page.locator("input[type=text]:visible")
    for i, value in ((1, steps), (2, substeps)):  # test trajectory, steps, sub-steps
        inputs.nth(i).fill(str(value))
        inputs.nth(i).press("Enter")
    page.wait_for_timeout(500)
    t0 = time.perf_counter()
    page.get_by_role("button", name="Start").click()
    status = page.get_by_text(re.compile(r"(done|stopped) after \d+ steps"))
    status.wait_for(timeout=timeout_s * 1000)
    wall = time.perf_counter() - t0
    text = status.inner_text()
    fps = float(re.search(r"([\d.]+) frames/s", text).group(1))
    return {"status": text, "fps": fps, "wall_s": wall, "ws_messages": len(messages)}


@pytest.mark.ui
def test_rollout_page_puts_live_frames_on_screen(page, served_app):
    result = run_rollout(page, served_app, "burgers2d", ["euler", "rk4"], steps=20, substeps=1)
    assert "done after 20 steps" in result["status"]
    assert result["fps"] > 0
    page.wait_for_timeout(1000)
    for title in ("truth", "euler", "|error| euler"):  # the region under each view's caption
        box = page.get_by_text(title, exact=True).first.bounding_box()
        shot = page.screenshot(clip={"x": box["x"], "y": box["y"] + 25, "width": 420, "height": 280})
        std, colours = _pixels(shot)
        assert std > 20 and colours > 200, (title, std, colours)  # an image of a flow, not a blank canvas
    assert page.get_by_text(re.compile(r"t = 0\.2 · step 20 of 20")).is_visible()
    if os.environ.get("WORKBENCH_SCREENSHOTS"):
        _save(page, "rollout_page.png")
    assert page.js_errors == []


@pytest.mark.ui
def test_error_page_draws_curves(page, served_app):
    _open_tab(page, served_app, "Error accumulation")
    page.locator("input[type=checkbox]:visible").first.check()  # quick look
    _choose_models(page, ["euler", "rk4"], CHOICES)
    page.get_by_role("button", name="Compute").click()
    page.get_by_role("cell", name="rk4 (dt=Δt)").wait_for(timeout=240_000)
    page.wait_for_timeout(1500)
    box = page.get_by_text(re.compile(r"^Δt = ")).first.bounding_box()  # the table's caption, under the plot
    shot = page.screenshot(clip={"x": box["x"], "y": max(0, box["y"] - 470), "width": 800, "height": 450})
    std, colours = _pixels(shot)
    assert std > 10 and colours > 30, (std, colours)
    if os.environ.get("WORKBENCH_SCREENSHOTS"):
        _save(page, "error_page.png")
    assert page.js_errors == []


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
