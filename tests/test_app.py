"""Unit tests of the app's view helpers and the Data explorer page (no browser, no server).

Datasets are tiny (grid overrides, few frames) and go to the per-session cache from conftest.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import panel as pn
import pytest

from core.datasets import DatasetConfig, generate, open_dataset
from core.errors import WorkbenchError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))  # as `panel serve app` does

from conftest import FakeNotifications
from pages import _widgets as w  # noqa: E402
from pages import data_explorer as de  # noqa: E402

TINY = {  # UI settings that make each system's dataset take about a second
    "kdv1d": {"grid": "32", "frames": 11},
    "grayscott2d": {"grid": "16", "frames": 6},
    "grayscott3d": {"grid": "16", "frames": 6},
}




@pytest.fixture
def notes(monkeypatch):
    fake = FakeNotifications()
    monkeypatch.setattr(type(pn.state), "notifications", property(lambda self: fake))
    return fake


def make_page(system: str, **settings) -> de.DataExplorer:
    page = de.create()
    page.param.update(system=system, samples=2, **{**TINY[system], **settings})
    assert page.generate()
    assert page.runner.wait(120)
    assert page.error == "", page.error
    return page


def _shown(view) -> np.ndarray:
    """The frame a 1D / 2D stream view holds."""
    data = view.source.data
    return np.asarray(data["image"][0] if "image" in data else data["y"])


# ------------------------------------------------------------------------------------- helpers --
def test_value_range_by_hand():
    assert w.value_range([0.2, 0.5, np.nan, 0.9]) == (0.2, 0.9)  # one sign: the data's extent
    assert w.value_range([-1.0, 0.5, 2.0]) == (-2.0, 2.0)  # both signs, comparable: symmetric
    assert w.value_range([-0.01, 3.0]) == (-0.01, 3.0)  # both signs, lopsided: not symmetric
    lo, hi = w.value_range(np.full(4, 2.0))
    assert lo < 2.0 < hi  # a constant field still gets an axis
    assert w.value_range([np.nan, np.inf]) == (-1.0, 1.0)
    assert w.default_cmap((-2.0, 2.0)) == "RdBu_r" and w.default_cmap((0.0, 1.0)) == "viridis"


def test_frame_view_rejects_other_dims_and_shapes():
    with pytest.raises(WorkbenchError, match="1, 2 or 3"):
        w.stream_view(("t", "z", "y", "x"), {}, (0, 1))
    view = w.stream_view(("x",), {"x": np.arange(5.0)}, (0, 1))
    with pytest.raises(WorkbenchError, match=r"\(4,\)"):
        view.update(np.zeros(4))


def test_image_view_orients_by_coordinates():
    """Row i of the frame sits at y[i]: Bokeh draws image row 0 at the bottom (y[0]) of the extent."""
    y, x = np.linspace(0, 1, 4), np.linspace(0, 2, 6)
    frame = np.arange(24.0).reshape(4, 6)  # value grows with y (rows) and x (columns)
    view = w.stream_view(("y", "x"), {"y": y, "x": x}, (0.0, 23.0), label="u")
    view.update(frame, title="t = 0")
    assert (view.mapper.low, view.mapper.high) == (0.0, 23.0)  # the fixed colour range
    np.testing.assert_array_equal(view.source.data["image"][0], frame)
    glyph = view.fig.renderers[0].glyph
    # pixel centres at the coordinates: extent = coordinate range plus half a cell on each side
    assert glyph.x == pytest.approx(-0.2) and glyph.dw == pytest.approx(2.4)
    assert glyph.y == pytest.approx(-1 / 6) and glyph.dh == pytest.approx(4 / 3)
    assert w.stream_view(("y", "x"), {"y": y, "x": x}, (-1.0, 1.0)).cmap == "RdBu_r"


def test_curve_view_pushes_frames_in_place():
    """Updating a rendered view only changes its data source's data: no model is added, removed
    or restyled in the document, so the browser patches one array per frame."""
    from bokeh.document import Document
    from bokeh.document.events import ColumnDataChangedEvent, ModelChangedEvent

    x = np.linspace(0, 1, 8)
    view = w.stream_view(("x",), {"x": x}, (-1.0, 1.0), label="u")
    doc = Document()
    doc.add_root(view.fig)
    models_before = {m.id for m in doc.models}
    events = []
    doc.callbacks.on_change(events.append)
    for k in range(3):
        view.update(np.sin(x + k))
    assert {m.id for m in doc.models} == models_before and view.frames_shown == 3
    assert len(events) == 3
    assert all(isinstance(e, ModelChangedEvent | ColumnDataChangedEvent) and e.model is view.source
               and getattr(e, "attr", "data") == "data" for e in events)
    np.testing.assert_allclose(view.source.data["y"], np.sin(x + 2))


def test_curve_view_overlays_curves_and_grows_to_show_overshoot():
    x = np.linspace(0, 1, 8)
    view = w.StreamCurve(("x",), {"x": x}, (-1.0, 1.0), curves={"truth": ("#000", "solid"),
                                                                   "model": ("#f00", "solid")})
    assert (view.fig.y_range.start, view.fig.y_range.end) == pytest.approx((-1.3, 1.3))  # range + 15 %
    view.update_all({"truth": np.zeros(8), "model": np.full(8, 2.0)})  # overshoot to 2
    assert view.fig.y_range.end >= 2.0 and view.fig.y_range.start == pytest.approx(-1.3)
    view.update_all({"model": np.full(8, 1e9)})  # divergence-sized values: capped at 2 ranges beyond
    assert view.fig.y_range.end <= 5.5


def test_volume_view_iso_surface_is_the_sphere():
    """The iso-surface of f = |p - c| at level R lies on the sphere of radius R (to a grid step)."""
    c = np.linspace(0.0, 1.0, 21)
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    f = np.sqrt((x - 0.5) ** 2 + (y - 0.4) ** 2 + (z - 0.6) ** 2)  # (z, y, x)
    view = w.stream_view(("z", "y", "x"), {"z": c, "y": c, "x": c}, (0.0, 0.6))
    assert view.param.level.bounds == (0.0, 0.6)  # physical levels inside the colour range
    view.level = 0.3
    view.update(f)
    pts = np.asarray(view.iso.points)  # (N, 3) as (x, y, z)
    assert view.surface_points() > 100
    r = np.linalg.norm(pts - np.array([0.5, 0.4, 0.6]), axis=1)
    assert np.abs(r - 0.3).max() < 0.05  # grid step 0.05
    view.mode = "volume"
    vol = view.panes["volume"].object  # (x, y, z) for VTKVolume
    assert vol.shape == (21, 21, 21) and vol[3, 7, 11] == pytest.approx(f[11, 7, 3])
    view.mode = "iso-surface"
    view.update(np.full(f.shape, 0.1))
    assert view.surface_points() == 0 and not view.crossed  # never crossed: said in the caption
    view.close()


# ---------------------------------------------------------------------------------- task runner --
def test_task_runner_reports_progress_and_result():
    runner, got = w.TaskRunner(), []

    def job(progress):
        for i in range(5):
            progress(i + 1, 5, f"step {i + 1}")
        return 42

    assert runner.run(job, got.append)
    assert runner.wait(10)
    assert got == [42] and runner.error == "" and not runner.busy
    assert (runner.done, runner.total, runner.bar.value, runner.bar.max) == (5, 5, 5, 5)


def test_task_runner_turns_errors_into_notifications(notes):
    runner = w.TaskRunner()

    def bad(progress):
        raise WorkbenchError("k=0 must be >= 1")

    runner.run(bad, lambda r: None)
    runner.wait(10)
    assert runner.error == "k=0 must be >= 1" and notes.errors == ["k=0 must be >= 1"]

    def bug(progress):
        return 1 / 0

    runner.run(bug, lambda r: None)
    runner.wait(10)
    assert runner.error.startswith("unexpected error (ZeroDivisionError") and "\n" not in runner.error


def test_task_runner_cancels_at_next_progress_report():
    runner, started, release = w.TaskRunner(), threading.Event(), threading.Event()
    steps = []

    def job(progress):
        for i in range(100):
            progress(i, 100, "")
            steps.append(i)
            started.set()
            release.wait(5)
        return "finished"

    runner.run(job, steps.append)
    started.wait(5)
    runner.cancel()
    release.set()
    runner.wait(10)
    assert "finished" not in steps and len(steps) == 1 and runner.message == "cancelled"


# --------------------------------------------------------------------------------- data explorer --
@pytest.mark.parametrize("system,ndim", [("kdv1d", 1), ("grayscott2d", 2), ("grayscott3d", 3)])
def test_page_builds_and_shows_the_dataset_frames(system, ndim):
    page = make_page(system)
    ds = page.ds
    assert ds.attrs["system"] == system and list(page.views) == [ndim]
    view = page.views[ndim]
    assert view.shape == tuple(int(TINY[system]["grid"]) for _ in range(ndim))
    page.time_index = 3  # what the Player does
    truth = ds["u"].isel(sample=0, time=3).values
    if ndim < 3:
        np.testing.assert_array_equal(_shown(view), truth)
    else:
        np.testing.assert_array_equal(view._frame, truth)
        assert view.surface_points() > 0
    assert "coarse frame 3/" in view.title and f"t = {ds['time'].values[3]:.4g}" in view.title
    lo, hi = view.clim  # one colour range for the whole trajectory (coarse and bursts)
    assert lo <= float(ds["u"].isel(sample=0).min()) and hi >= float(ds["u"].isel(sample=0).max())
    assert (page.spacetime is not None) == (ndim == 1)
    assert "Δt = k·δt" in page.info.object and ds.attrs["key"] in page.info.object
    assert page.equation.object.strip("$") == ds.attrs["latex"]


def test_a_new_dimensionality_replaces_the_view_never_stacks(notes):
    """2D -> 1D -> 3D -> 2D leaves exactly one frame view on the page, the last one's."""
    page = make_page("grayscott2d")
    for system in ("kdv1d", "grayscott3d", "grayscott2d"):
        page.param.update(system=system, **TINY[system])
        assert page.generate() and page.runner.wait(120) and page.error == ""
        assert len(page.views) == 1
        if system == "grayscott3d":  # the page's one VTK view, shown; no 1D / 2D view left
            vtk = page.frame_view.panes["iso-surface"]
            assert page.volume_area.visible and vtk in page.volume_area.select(type(vtk))
            assert len(page.frame_area) == 0
        else:  # exactly the new view; the 3D one hidden (vtk.js cannot take a scene off the page)
            assert len(page.frame_area) == 1 and not page.volume_area.visible
            assert page.frame_view.fig in [p.object for p in page.frame_area.select(pn.pane.Bokeh)]
    assert page.frame_view.dims == ("y", "x") and list(page.spacetime_area) == []


def test_equations_and_table_describe_the_dataset_shown_while_another_generates():
    page = make_page("grayscott2d")
    key = page.ds.attrs["key"]
    page.system = "kdv1d"  # chosen for the next generation, not generated yet
    assert "grayscott2d" in page.info.object and key in page.info.object
    assert page.equation.object.strip("$") == page.ds.attrs["latex"]
    from core.physics import get_system

    assert page.preview.object.strip("$") == get_system("kdv1d", "cpu").latex  # the sidebar previews it


@pytest.mark.parametrize("name,typed,allowed", [
    ("samples", "-5", "2..64"), ("samples", "abc", "2..64"), ("samples", "1e9", "2..64"),
    ("seed", "-1", "0..2147483647"), ("seed", "1e12", "0..2147483647"), ("frames", "999999", "0..5000"),
])
def test_typed_values_out_of_range_are_refused_with_the_range(notes, name, typed, allowed):
    page = de.create()
    box = w.int_input(page, name)
    before = getattr(page, name)
    box.value = typed
    assert getattr(page, name) == before and box.value == str(before)  # the box shows the value used
    assert len(notes.errors) == 1 and allowed in notes.errors[0] and repr(typed) in notes.errors[0]
    box.value = "3"
    assert getattr(page, name) == 3 and len(notes.errors) == 1


def test_fine_burst_view_meets_the_coarse_frames():
    """Burst b, fine step k (= Δt/δt) is the same state as coarse frame burst_start[b] + 1."""
    page = make_page("grayscott2d")
    ds, k = page.ds, page.ds.attrs["k"]
    page.param.update(field="v", view="fine burst", burst=1)
    page.time_index = k
    start = int(ds["burst_start"].values[1])
    np.testing.assert_allclose(_shown(page.views[2]), ds["v"].isel(sample=0, time=start + 1).values,
                               rtol=0, atol=1e-6)
    assert f"burst 1, δt step {k}/" in page.views[2].title
    assert page.player.end == ds.sizes["step"] - 1


def test_open_cached_dataset_and_sessions_are_independent():
    cfg = DatasetConfig("kdv1d", n_samples=2, n_coarse=6, overrides=(("n", (32,)),))
    ds = generate(cfg)
    a, b = de.create(), de.create()
    assert any(p.endswith(f"{ds.attrs['key']}.zarr") for p in a.param.cached.objects)
    a.cached = next(p for p in a.param.cached.objects if p.endswith(f"{ds.attrs['key']}.zarr"))
    assert a.open() and a.runner.wait(60) and a.error == ""
    assert a.ds.attrs["key"] == ds.attrs["key"] and b.ds is None and b.system == "grayscott2d"
    np.testing.assert_array_equal(_shown(a.views[1]), open_dataset(cfg)["u"].isel(sample=0, time=0).values)


@pytest.mark.parametrize("settings,expected", [
    ({"system": "fhn2d", "grid": "128"}, "stability bound"),  # finer grid than the cpu preset's dt allows
    ({"system": "grayscott2d", "grid": "16", "frames": 2}, "n_coarse"),  # bursts do not fit
])
def test_bad_input_becomes_a_notification(notes, settings, expected):
    page = de.create()
    page.param.update(samples=2, **settings)
    page.generate()
    page.runner.wait(60)
    assert expected in page.error and len(notes.errors) == 1 and expected in notes.errors[0]
    assert page.ds is None and page.views == {}


def test_open_without_a_cached_dataset_is_refused(notes, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "empty"))
    page = de.create()
    assert page.cached is None and not page.open()
    assert "no cached dataset" in page.error and notes.errors == [page.error]


# ---------------------------------------------------------------------------------------- shell --
def test_shell_keeps_working_around_a_broken_page(monkeypatch):
    """main.py builds one tab per page; a page whose create() raises shows its error in its own
    tab, and switching tabs swaps the sidebar to that page's controls."""
    import runpy
    import types

    import pages

    broken = types.ModuleType("pages.broken")
    broken.TITLE = "Broken"
    broken.create = lambda: 1 / 0
    monkeypatch.setitem(sys.modules, "pages.broken", broken)
    monkeypatch.setattr(pages, "PAGE_MODULES", ["pages.broken", "pages.data_explorer"])
    shell = runpy.run_path(str(Path(de.__file__).resolve().parent.parent / "main.py"))
    first = shell["pages"][0]
    assert isinstance(first, shell["BrokenPage"]) and "ZeroDivisionError" in first._alert.object
    assert list(shell["pages"]) == [0]  # the explorer is built only when its tab opens
    assert shell["tabs"]._names == ["Broken", de.TITLE]
    shell["tabs"].active = 1
    explorer = shell["pages"][1]
    assert isinstance(explorer, de.DataExplorer)
    holder = shell["holders"][1]
    assert len(holder) == 1 and not isinstance(holder[0], pn.indicators.LoadingSpinner)
    assert shell["sidebar"][0] is explorer.sidebar()


def test_page_info_matches_the_page_modules():
    """The shell draws tabs from PAGE_INFO without importing the pages: it must say what they say."""
    import importlib

    import pages

    assert set(pages.PAGE_INFO) == set(pages.PAGE_MODULES)
    for name, (title, extensions) in pages.PAGE_INFO.items():
        module = importlib.import_module(name)
        assert (module.TITLE, tuple(module.EXTENSIONS)) == (title, extensions)


def test_unreadable_open_dataset_becomes_a_notification(notes):
    page = make_page("kdv1d", seed=5)
    page.ds = page.ds.drop_vars("u_fine")  # as if the store lost its burst array while open
    page.sample = list(page.param.sample.objects)[1]
    assert "KeyError" in page.error and "reopen or regenerate" in page.error and notes.errors == [page.error]


def test_sampling_timeline_marks_coarse_frames_bursts_and_the_time_shown():
    page = make_page("grayscott2d")
    ds, a = page.ds, page.ds.attrs
    times, bursts = page.timeline.data
    np.testing.assert_array_equal(times, ds["time"].values)
    dt_fine = a["dt_fine"]
    expected = [(t0, t0 + a["burst_len"] * dt_fine) for t0 in ds["time"].values[ds["burst_start"].values]]
    np.testing.assert_allclose(bursts, expected)
    page.param.update(view="fine burst", burst=2)
    page.time_index = 3
    assert page.timeline.marker.location == pytest.approx(expected[2][0] + 3 * dt_fine)
