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
from _browser import wait_for
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


def typed(page, label: str, value: str) -> None:
    """Type `value` into the sidebar's text box `label` and press Enter."""
    box = page.get_by_role("textbox", name=label, exact=True)
    box.fill(value)
    box.press("Enter")


def generate(page, system: str, grid: str, frames: int) -> None:
    """Set the sidebar to a small dataset of `system`, click Generate, wait for its frame 0."""
    page.locator('select:has(option:text-is("grayscott2d"))').select_option(system)
    page.locator('select:has(option:text-is("preset"))').select_option(grid)
    typed(page, "Samples", "2")
    typed(page, "Frames", str(frames))
    page.get_by_role("button", name="Generate").click()
    page.locator(f"text=/{system}.*coarse frame 0\\//").first.wait_for(timeout=60_000)


def visible_count(page, selector: str) -> int:
    return page.locator(f"{selector}:visible").count()


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


def _wait_drawn(plot) -> None:
    wait_for(lambda: colormap_fraction(pixels(plot)), lambda r: r[0] > 0.3)


def _wait_changed(plot, before: np.ndarray) -> np.ndarray:
    return wait_for(lambda: pixels(plot),
                     lambda now: now.shape == before.shape and np.abs(now.astype(int) - before).mean() > 1.0)


# ------------------------------------------------------------------------------- browser tests --
@pytest.mark.ui
@pytest.mark.timeout(120)  # typically 5-25 s; the limit only guards against a hang
def test_page_loads_without_errors(page, served_app):
    load(page, served_app)
    assert page.title() == TITLE
    page.get_by_text("Generate a dataset").wait_for()
    assert page.get_by_text("Equations").count() >= 1
    # the first page loads no 3D, table or MathJax library (4.8 MB of scripts): they come when a
    # page needs them (app/pages/_scripts.py)
    fetched = page.evaluate("performance.getEntriesByType('resource').map(r => r.name)")
    heavy = [f for f in fetched if any(k in f for k in ("vtk.js", "bokeh-mathjax", "tabulator"))]
    assert heavy == [], heavy
    assert page.js_errors == []


@pytest.mark.ui
@pytest.mark.timeout(120)  # typically 5-25 s; the limit only guards against a hang
def test_generate_2d_draws_the_field_and_scrubs(page, served_app):
    load(page, served_app)
    generate(page, "grayscott2d", "32", 21)
    plot = page.locator(".wb-frame").first
    _wait_drawn(plot)
    first = pixels(plot)
    share, colours = colormap_fraction(first)
    # the 32² image fills ~60 % of the pane (measured); the colour bar alone is < 5 %
    assert share > 0.3 and colours > 30, (share, colours)
    assert first.std() > 20
    page.locator("button.last").click()
    page.locator("text=coarse frame 20/20").first.wait_for(timeout=20_000)
    later = _wait_changed(plot, first)
    assert later.shape == first.shape and np.abs(later.astype(int) - first).mean() > 1.0  # a new frame
    assert page.js_errors == []


@pytest.mark.ui
@pytest.mark.timeout(120)  # typically 5-25 s; the limit only guards against a hang
def test_generate_3d_draws_iso_surface_and_volume(page, served_app):
    load(page, served_app)
    generate(page, "grayscott3d", "16", 6)
    iso = page.locator(".wb-vtk-iso").first
    iso.wait_for()
    share, colours, std = wait_for(lambda: drawn(pixels(iso)), lambda r: r[0] > 0.08)  # vtk.js draws late
    # measured ~18 % with the surface; the outline box alone is ~2 % (12 one-pixel edges)
    assert share > 0.08 and colours > 20 and std > 10, (share, colours, std)
    page.get_by_role("button", name="volume").click()
    volume = page.locator(".wb-vtk-volume").first
    volume.wait_for()
    share, colours, std = wait_for(lambda: drawn(pixels(volume)), lambda r: r[0] > 0.15)
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


@pytest.mark.ui
@pytest.mark.timeout(240)
def test_a_new_dimensionality_replaces_the_view(page, served_app):
    """2D -> 1D -> 3D -> 2D: exactly one frame view visible each time (it used to stack three,
    their "x" axes linked)."""
    load(page, served_app)
    steps = (("grayscott2d", "16", 6, 1, 0), ("kdv1d", "32", 11, 1, 0), ("grayscott3d", "16", 6, 0, 1),
             ("grayscott2d", "16", 6, 1, 0))
    for system, grid, frames, frame_views, scenes in steps:
        generate(page, system, grid, frames)
        counts = wait_for(lambda: (visible_count(page, ".wb-frame"), visible_count(page, ".wb-vtk-iso")),
                           lambda c, want=(frame_views, scenes): c == want)  # Playwright pierces shadow DOM
        assert counts == (frame_views, scenes), (system, counts)
    assert visible_count(page, ".wb-spacetime") == 0  # KdV's space-time view went with KdV
    assert page.js_errors == []


@pytest.mark.ui
@pytest.mark.timeout(240)
def test_equations_and_table_describe_the_dataset_shown_while_another_generates(page, served_app):
    load(page, served_app)
    generate(page, "grayscott2d", "16", 6)
    # the rendered formula and table inside the cards (Panel panes live in shadow roots)
    equations, table = page.locator(".wb-equations .katex").first, page.locator(".wb-dataset table").first
    shown_eq = equations.inner_text()
    page.locator('select:has(option:text-is("grayscott2d"))').select_option("kdv1d")
    typed(page, "Frames", "201")  # a longer KdV run: a few seconds of generation
    page.get_by_role("button", name="Generate").click()
    while "kdv1d" not in table.inner_text():  # during generation: both still the dataset shown
        eq, tab = equations.inner_text(), table.inner_text()
        if "kdv1d" in tab:
            break
        assert "grayscott2d" in tab and eq == shown_eq, (eq, tab)
        page.wait_for_timeout(200)  # polling interval of the check above, not a wait for a result
    assert wait_for(equations.inner_text, lambda eq: eq != shown_eq) != shown_eq
    assert page.js_errors == []


@pytest.mark.ui
@pytest.mark.timeout(180)
def test_typed_values_out_of_range_give_a_notification_and_show_the_value_used(page, served_app):
    load(page, served_app)
    cases = [("Samples", "-5", "2..64", "4"), ("Samples", "abc", "2..64", "4"),
             ("Samples", "1e9", "2..64", "4"),
             ("Seed", "-1", "0..2147483647", "0"), ("Seed", "1e12", "0..2147483647", "0"),
             ("Frames", "999999", "0..5000", "0")]
    for label, value, allowed, used in cases:
        typed(page, label, value)
        toast = page.locator(".notyf__toast", has_text=f"{label} = '{value}'").first
        toast.wait_for(timeout=10_000)
        text = toast.inner_text()
        assert allowed in text and f"'{value}'" in text and f"using {used}" in text, text
        box = page.get_by_role("textbox", name=label, exact=True)
        assert wait_for(box.input_value, lambda v, u=used: v == u) == used
    assert page.js_errors == []
