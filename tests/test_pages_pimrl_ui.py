"""Browser tests of the Rollout and Error-accumulation pages (Playwright + Debian Chromium).

The pages are driven by `core.appbench`'s helpers, the same the benchmark measures with
(`python -m core bench app` reports the streaming rates).
"""

from __future__ import annotations

import io
import os
import re

import numpy as np
import pytest
from _browser import wait_for

from core.appbench import choose_models, open_tab, run_rollout, setup_rollout


def _pixels(png: bytes) -> tuple[float, int]:
    """(std of the pixel values, number of distinct colours) of a PNG screenshot."""
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    return float(img.std()), len(np.unique(img.reshape(-1, 3), axis=0))


def _save(page, name: str) -> None:
    """Keep a full-page screenshot in $WORKBENCH_SCREENSHOTS (for a person to look at)."""
    page.screenshot(path=os.path.join(os.environ["WORKBENCH_SCREENSHOTS"], name), full_page=True)


@pytest.mark.ui
@pytest.mark.timeout(300)
def test_rollout_page_puts_live_frames_on_screen(page, served_app):
    result = run_rollout(page, served_app, "burgers2d", ["euler", "rk4"], steps=20, substeps=1,
                         timeout_s=240)
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
        std, colours = wait_for(shot, lambda r: r[0] > 20 and r[1] > 100)
        assert std > 20 and colours > 100, (title, std, colours)
    assert page.get_by_text(re.compile(r"t = 0\.2 · step 20 of 20")).is_visible()
    if os.environ.get("WORKBENCH_SCREENSHOTS"):
        _save(page, "rollout_page.png")
    assert page.js_errors == []


@pytest.mark.ui
@pytest.mark.timeout(300)
def test_rollout_scrubber_shows_after_an_uninterrupted_run_and_while_paused(page, served_app):
    setup_rollout(page, served_app, "kdv1d", ["rk4"], steps=40, substeps=128, rate=2)
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
    open_tab(page, served_app, "Error accumulation", "Compute")
    page.locator("input[type=checkbox]:visible").first.check()  # quick look (4 fresh test trajectories)
    choose_models(page, ["euler", "rk4"])
    page.get_by_role("button", name="Compute").click()
    page.get_by_role("cell", name="rk4 (dt=Δt)").wait_for(timeout=240_000)
    plot = page.locator(".wb-error-plot").first
    std, colours = wait_for(lambda: _pixels(plot.screenshot()), lambda r: r[0] > 10 and r[1] > 30)
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
            setup_rollout(pg, served_app, "kdv1d", ["rk4"], steps=40, substeps=128, rate=2)
        open_tab(d, served_app, "Rollout", "Start")
        count = d.get_by_text(re.compile(r"server: \d+ background task")).first

        def tasks() -> int:
            return int(re.search(r"(\d+) background", count.inner_text()).group(1))

        for pg in (a, b, c):
            pg.get_by_role("button", name="Start").click()
        for pg in (a, b, c):
            pg.get_by_text(re.compile(r"step [1-9]\d* of 40")).first.wait_for(timeout=180_000)
        assert wait_for(tasks, lambda n: n == 3) == 3
        step_a = a.get_by_text(re.compile(r"step \d+ of 40")).first.inner_text()
        contexts[2].close()  # the third tab goes away mid-run
        assert wait_for(tasks, lambda n: n == 2, timeout_s=30) == 2  # its work stopped
        # the other two keep running: later frames arrive, and both finish their own 40 steps
        assert wait_for(lambda: a.get_by_text(re.compile(r"step \d+ of 40")).first.inner_text(),
                         lambda t: t != step_a) != step_a
        for pg in (a, b):
            pg.get_by_text("done after 40 steps").wait_for(timeout=180_000)
        assert wait_for(tasks, lambda n: n == 0) == 0
    finally:
        for ctx in contexts:
            try:
                ctx.close()
            except Exception:  # the third was closed on purpose
                pass
