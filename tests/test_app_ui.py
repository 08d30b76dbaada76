"""The served workbench: HTTP answer, and the Data explorer driven from Chromium (marked `ui`).

Each browser test picks a small setting in the sidebar, clicks Generate, waits for the first frame
and checks pixels of the plot (not the whole page: titles and axes alone would pass a blankness
test) plus that the page raised no JavaScript error.
"""

from __future__ import annotations

import io
import urllib.request

import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

TITLE = "PIMRL × TinyFormer Workbench"


def test_served_page_answers_with_the_title(served_app):
    with urllib.request.urlopen(served_app, timeout=60) as r:
        html = r.read().decode()
        assert r.status == 200
    assert f"<title>{TITLE}</title>" in html


# ------------------------------------------------------------------------------------ helpers --
def load(page, url: str) -> None:
    page.goto(url)
    page.get_by_role("button", name="Generate").wait_for(timeout=45_000)


def generate(page, system: str, grid: str, frames: int) -> None:
    """Set the sidebar to a small dataset of `system`, click Generate, wait for frame 0."""
    page.locator('select:has(option:text-is("grayscott2d"))').select_option(system)
    page.locator('select:has(option:text-is("preset"))').select_option(grid)
    inputs = page.locator('input[type="text"], input:not([type])')  # samples, seed, frames
    for i, value in ((0, "2"), (2, str(frames))):
        inputs.nth(i).fill(value)
        inputs.nth(i).press("Enter")
    page.get_by_role("button", name="Generate").click()
    page.locator("text=coarse frame 0/").first.wait_for(timeout=50_000)


def pixels(locator) -> np.ndarray:
    """The screenshot of `locator` as an (H, W, 3) uint8 array."""
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB"))


def colormap_fraction(rgb: np.ndarray, cmap: str = "viridis", tol: float = 12.0) -> tuple[float, int]:
    """Share of pixels whose colour is (within `tol`) one of the colour map's, and how many distinct
    such colours there are: axes, text and background are grey, so only a drawn field counts."""
    lut = (colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.float32)  # (256, 3)
    flat = rgb.reshape(-1, 3).astype(np.float32)
    dist = np.sqrt(((flat[:, None, :] - lut[None]) ** 2).sum(-1)).min(1)  # (H·W,)
    inside = dist < tol
    return float(inside.mean()), len(np.unique(flat[inside], axis=0))


def drawn(rgb: np.ndarray, background=(255, 255, 255)) -> tuple[float, int, float]:
    """Share of non-background pixels, number of distinct colours, pixel standard deviation."""
    flat = rgb.reshape(-1, 3).astype(np.int32)
    fg = np.abs(flat - np.array(background)).sum(1) > 30
    return float(fg.mean()), len(np.unique(flat, axis=0)), float(rgb.std())


# ------------------------------------------------------------------------------- browser tests --
@pytest.mark.ui
@pytest.mark.timeout(120)  # typically 5-25 s; the limit only guards against a hang
def test_page_loads_without_errors(page, served_app):
    load(page, served_app)
    assert page.title() == TITLE
    page.get_by_text("Generate a dataset").wait_for()
    assert page.get_by_text("Equations").count() >= 1
    assert page.js_errors == []


@pytest.mark.ui
@pytest.mark.timeout(120)  # typically 5-25 s; the limit only guards against a hang
def test_generate_2d_draws_the_field_and_scrubs(page, served_app):
    load(page, served_app)
    generate(page, "grayscott2d", "32", 21)
    plot = page.locator(".wb-frame").first
    page.wait_for_timeout(500)
    first = pixels(plot)
    share, colours = colormap_fraction(first)
    # the 32² image fills ~60 % of the pane (measured); the colour bar alone is < 5 %
    assert share > 0.3 and colours > 30, (share, colours)
    assert first.std() > 20
    page.locator("button.last").click()
    page.locator("text=coarse frame 20/20").first.wait_for(timeout=20_000)
    page.wait_for_timeout(500)
    later = pixels(plot)
    assert later.shape == first.shape and np.abs(later.astype(int) - first).mean() > 1.0  # a new frame
    assert page.js_errors == []


@pytest.mark.ui
@pytest.mark.timeout(120)  # typically 5-25 s; the limit only guards against a hang
def test_generate_3d_draws_iso_surface_and_volume(page, served_app):
    load(page, served_app)
    generate(page, "grayscott3d", "16", 6)
    iso = page.locator(".wb-vtk-iso").first
    iso.wait_for()
    page.wait_for_timeout(1500)  # vtk.js draws after the scene arrives
    share, colours, std = drawn(pixels(iso))
    # measured ~18 % with the surface; the outline box alone is ~2 % (12 one-pixel edges)
    assert share > 0.08 and colours > 20 and std > 10, (share, colours, std)
    page.get_by_role("button", name="volume").click()
    volume = page.locator(".wb-vtk-volume").first
    volume.wait_for()
    page.wait_for_timeout(1500)
    share, colours, std = drawn(pixels(volume))
    assert share > 0.15 and colours > 50 and std > 10, (share, colours, std)  # measured ~43 %
    assert page.js_errors == []


@pytest.mark.ui
@pytest.mark.timeout(120)  # typically 5-25 s; the limit only guards against a hang
def test_bad_setting_shows_a_notification_not_a_traceback(page, served_app):
    load(page, served_app)
    page.locator('select:has(option:text-is("grayscott2d"))').select_option("fhn2d")
    page.locator('select:has(option:text-is("preset"))').select_option("128")  # too fine for the cpu dt
    page.get_by_role("button", name="Generate").click()
    toast = page.locator(".notyf__toast").first
    toast.wait_for(timeout=30_000)
    assert "stability bound" in toast.inner_text()
    assert page.get_by_text("Traceback").count() == 0 and page.js_errors == []
