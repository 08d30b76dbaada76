"""Rollout and Error-accumulation pages without a browser: page objects driven as a session would.

Outside a served session `call_on_doc` runs updates right away, so the worker threads run the same
code paths as in the app; assertions compare what the views hold against the dataset itself.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))  # as `panel serve app` does

from pages import _stream_views as sv  # noqa: E402
from pages import error_accumulation as ea  # noqa: E402
from pages import rollout as ro  # noqa: E402

from core.datasets import generate, trajectories  # noqa: E402


@pytest.fixture
def no_checkpoints(tmp_path, monkeypatch):
    """An empty data folder: no shipped checkpoint is found, whatever the checkout ships."""
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "data"))
    return tmp_path


@pytest.fixture
def notes(monkeypatch):
    """Capture the notifications the pages raise."""
    got: list[str] = []
    monkeypatch.setattr(ro, "notify_error", got.append)
    monkeypatch.setattr(ea, "notify_error", got.append)
    return got


def _truth(system: str) -> np.ndarray:
    ds = generate(ro.dataset_config(system, "cpu", ro.SIZES[1]))
    return trajectories(ds, "test").numpy()[0]  # (T, C, *n)


def test_rollout_page_streams_every_frame_and_reports_missing_checkpoints(no_checkpoints, notes):
    page = ro.RolloutPage(system="burgers2d", size=ro.SIZES[1], models=["pimrl", "euler", "rk4"], n_steps=8)
    page.start()
    assert page.wait(240)
    assert page.state == "done" and page.n_done == 8 and page.step == 8
    assert any("pimrl" in n and "does not exist" in n for n in notes)  # a clear notification, not a crash
    assert list(page._data["models"]) == ["euler", "rk4"]
    truth = _truth("burgers2d")
    fi = page._data["fields"].index(page.field)
    # the truth view shows the dataset's own frame at step 8, after every step was shown
    np.testing.assert_allclose(page._views["truth"].source.data["image"][0], truth[8, fi], rtol=1e-6)
    assert page._data["shown"] == 8 and all(v.frames_shown >= 9 for v in page._views.values())
    # references: persistence's running RMSE is |u0 - u_j| over the grid, computed independently here
    expected = np.sqrt(np.mean((truth[1:9] - truth[0]) ** 2, axis=(1, 2, 3)))
    np.testing.assert_allclose(page._lines.sources["persistence"].data["value"], expected, rtol=1e-5)
    rmse = page._data["rmse"]
    assert np.all(rmse["euler"] > 100 * rmse["rk4"])  # the classic-scheme contrast the page teaches
    view = page._views["euler|err"]
    err = np.abs(page._data["pred"]["euler"][7, fi] - truth[8, fi])
    # log colours: ERROR_DECADES decades below the field's range; smaller errors show as the bottom colour
    lo, hi = sv.value_range(truth[:, fi])
    assert view.clim == pytest.approx(((hi - lo) * 10.0 ** -sv.ERROR_DECADES, hi - lo))
    assert type(view.mapper).__name__ == "LogColorMapper"
    np.testing.assert_allclose(view.source.data["image"][0], np.maximum(err, view.clim[0]), rtol=1e-5)
    page.step = 3  # the scrubber replays a stored frame
    np.testing.assert_allclose(page._views["truth"].source.data["image"][0], truth[3, fi], rtol=1e-6)


def test_rollout_page_pause_resume_stop_and_sessions_are_independent(no_checkpoints, notes):
    page, other = ro.RolloutPage(), ro.RolloutPage()
    page.param.update(system="kdv1d", size=ro.SIZES[1], models=["rk4"], substeps=128, n_steps=40)
    paused = threading.Event()

    def pause_at_three(step, _show=page._show_live):
        _show(step)
        if step == 3:
            page.toggle_pause()
            paused.set()

    page._show_live = pause_at_three
    page.start()
    assert paused.wait(240)
    assert page.state == "paused" and 3 <= page.n_done <= 40 and page.step == 3
    assert page.scrubber.visible  # paused: the scrubber replays what was computed
    assert isinstance(page._views["fields"], sv.StreamCurve)  # 1D: truth, model and persistence overlaid
    assert set(page._views["fields"].sources) == {"truth", "rk4", "persistence"}
    page.toggle_pause()
    page.stop()
    assert page.wait(60)
    assert page.state == "stopped" and 3 <= page.n_done < 40 and page.scrubber.visible
    assert other.state == "idle" and other._data is None and other.models == ["pimrl", "percnn", "rk4"]


def test_rollout_page_refuses_empty_model_choice(notes):
    page = ro.RolloutPage(models=[])
    page.start()
    assert page.state == "idle" and notes == ["choose at least one model"]


def test_stream_views_hold_the_frames_they_were_given():
    coords = {"z": np.arange(4.0), "y": np.arange(5.0), "x": np.arange(6.0)}
    frame = np.random.default_rng(0).random((4, 5, 6))
    proj = sv.stream_view(("z", "y", "x"), coords, (0.0, 1.0), projection=True)
    proj.update(frame)
    np.testing.assert_allclose(proj.source.data["image"][0], frame.max(axis=0), rtol=1e-6)
    image = sv.stream_view(("y", "x"), coords, (0.0, 1.0))
    image.update(frame[0])
    np.testing.assert_allclose(image.source.data["image"][0], frame[0], rtol=1e-6)
    with pytest.raises(ValueError, match="does not fit"):
        image.update(frame)
    lines = sv.StreamLines(["a"], ["#000000"])
    lines.append("a", np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.0, np.nan]))  # log axis: only 0.5 kept
    assert list(lines.sources["a"].data["value"]) == [0.5]
    assert len(sv.palette("magma")) == 256


def test_error_page_schemes_plot_table_and_redraw(no_checkpoints, notes):
    page = ea.ErrorAccumulationPage(system="burgers2d", quick=True, models=["euler", "rk4", "fno"])
    assert page.compute()
    page.runner.wait(300)
    assert page.runner.error == ""
    m = page.result["metrics"]
    assert list(m.model.values) == ["euler (dt=Δt)", "rk4 (dt=Δt)", *ea.REFERENCES]  # references always
    assert any("fno" in n for n in notes)
    fig = page._plot.object
    lines = [r for r in fig.renderers if type(r.glyph).__name__ == "Line"]
    areas = [r for r in fig.renderers if type(r.glyph).__name__ == "VArea"]
    assert len(areas) == 2 and len(lines) == 2 + len(ea.REFERENCES)  # references: lines without bands
    euler = m.rmse.sel(model="euler (dt=Δt)").mean("sample")
    np.testing.assert_allclose(lines[0].data_source.data["y"], euler)
    assert fig.y_scale.__class__.__name__ == "LogScale" and fig.legend[0] in fig.right  # legend off the data
    assert "| euler (dt=Δt) |" in page._table.object and "| rk4 (dt=Δt) |" in page._table.object
    assert "| never |" in page._table.object and "| 0 |" not in page._table.object  # never diverged
    assert "over 4 test trajectories" in fig.title.text and page.result["n_test"] == 4  # what the box says
    page.param.update(metric="corr", log_y=False, threshold=0.95)  # redraw only, no recompute
    assert page.result["metrics"] is m
    spans = [a for a in page._plot.object.center if type(a).__name__ == "Span"]
    assert any(s.dimension == "width" and s.location == 0.95 for s in spans)


def test_error_plot_marks_hct_where_the_mean_correlation_first_drops():
    import xarray as xr

    corr = np.array([[[0.99, 0.9, 0.7, 0.6], [0.99, 0.9, 0.8, 0.6]],   # model a: mean 0.99 0.9 0.75 -> 2·Δt
                     [[0.99, 0.99, 0.99, 0.99], [0.99, 0.99, 0.99, 0.99]]])  # model b: never
    dims = ("model", "sample", "time")
    m = xr.Dataset({k: (dims, corr if k == "corr" else 1 - corr) for k in ("rmse", "mae", "rel_l2", "corr")},
                   coords={"model": ["a", "b"], "time": 0.5 * np.arange(1, 5)})
    fig = ea.error_plot(m, "rmse", True, 0.8)
    spans = [a for a in fig.center if type(a).__name__ == "Span"]
    assert [s.location for s in spans] == [1.0]  # only model a, at (3 - 1)·0.5
    ghost = ea.error_plot(m, "rmse", True, 0.8, ghost=m, ghost_label="σ=0")
    labels = [item.label.value for item in ghost.legend[0].items]
    assert labels[:2] == ["before (σ=0): a", "before (σ=0): b"] and labels[2:] == ["a", "b"]


def test_error_page_trains_on_fewer_trajectories_on_the_fly(no_checkpoints, notes, monkeypatch):
    """Fewer trajectories are compared with the same model trained now on all of them (same budget);
    a recompute that only changes the noise reuses both trained models (no training call)."""
    from pages import _core

    calls = []
    real = _core.train_model

    def counting(name, ds, iterations, seed, progress):
        calls.append((name, int((ds["split"].values == "train").sum()), iterations))
        return real(name, ds, iterations, seed, progress)

    monkeypatch.setattr(_core, "train_model", counting)
    page = ea.ErrorAccumulationPage(system="kdv1d", quick=True, models=["convlstm"], n_train="1 (train now)",
                                    iterations=10, noise=0.05)
    page.compute()
    page.runner.wait(300)
    assert page.runner.error == ""
    names = [str(x) for x in page.result["metrics"].model.values if str(x) not in ea.REFERENCES]
    assert names == ["convlstm (1 traj., 10 its)", "convlstm (2 traj., 10 its)"]
    assert calls == [("convlstm", 1, 10), ("convlstm", 2, 10)] and len(page._cache) == 2
    page.noise = 0.2  # new metrics, same trained models
    page.compute()
    page.runner.wait(300)
    assert page.runner.error == "" and len(calls) == 2 and page._cache.hits == 2
    assert float(page.result["metrics"].attrs["ic_noise"]) == 0.2 and page.previous is not None


def test_error_page_model_cache_is_bounded():
    cache = ea.ModelCache(size=2)
    for key in "abc":
        cache.get(key, lambda k=key: k.upper())
    assert len(cache) == 2 and cache.get("a", lambda: "new") == "new"  # "a" was dropped first
def test_error_page_data_config_longer_macro_step_keeps_the_horizon():
    base = ea.data_config("burgers2d", "cpu", True, 1).resolved()
    longer = ea.data_config("burgers2d", "cpu", True, 2).resolved()
    assert longer.k == 2 * base.k
    assert (longer.n_coarse - 1) * longer.k == (base.n_coarse - 1) * base.k


def test_class_mode_computes_once_and_later_sessions_read_the_disk_cache(no_checkpoints, notes, monkeypatch):
    from pages import class_mode as cm

    monkeypatch.setattr(cm, "STORY", cm.STORY[:1])  # the Euler vs RK4 chapter: schemes only, seconds
    first = cm.create()
    assert first.runner.wait(300) and first.runner.error == ""
    (result,) = first.results.values()
    assert not result["cached"] and first._plot.object is not None
    second = cm.create()  # another browser: nothing computed again
    assert second.runner.wait(60)
    (again,) = second.results.values()
    assert again["cached"]
    np.testing.assert_allclose(again["metrics"].rmse.values, result["metrics"].rmse.values, rtol=1e-6)
    assert "| euler (dt=Δt) |" in second._table.object


def test_stop_while_preparing_wins(no_checkpoints, notes, monkeypatch):
    """Stop pressed while data and models load: nothing is rolled out and the page is startable."""
    import threading

    entered, release = threading.Event(), threading.Event()
    real = ro.prepare

    def slow_prepare(*args):
        progress = args[-1]
        entered.set()
        release.wait(30)
        progress(0, 1, "still loading")  # the next progress report after Stop
        return real(*args)

    monkeypatch.setattr(ro, "prepare", slow_prepare)
    page = ro.RolloutPage(system="kdv1d", size=ro.SIZES[1], models=["rk4"], n_steps=5)
    page.start()
    assert entered.wait(30) and page.state == "preparing"
    page.stop()
    release.set()
    assert page.wait(60)
    assert page.state == "idle" and page._data is None and page.runner.message == "cancelled"
    page.start()  # startable again, and this time it runs
    assert page.wait(120) and page.state == "done" and page.n_done == 5


# ------------------------------------------------------------------- teaching control ranges --
def test_rollout_controls_are_bounded_by_the_data_chosen(notes, monkeypatch):
    """The trajectory and step boxes accept what the chosen data holds: the checkpoints' test split
    (2 trajectories of 100 steps for burgers2d), the quick look (1 of 40); a value beyond is refused
    with that range and the box shows the value used."""
    from pages import _widgets

    monkeypatch.setattr(_widgets, "notify_error", notes.append)
    page = ro.RolloutPage(system="burgers2d")
    assert page.param.sample.bounds == (0, 1) and page.param.n_steps.bounds == (1, 100)
    page.size = ro.SIZES[1]
    assert page.param.sample.bounds == (0, 0) and page.param.n_steps.bounds == (1, 40)
    assert page.n_steps == 40  # clamped, not left at a value the data cannot give
    box = _widgets.int_input(page, "n_steps")
    box.value = "41"
    assert notes[-1] == "steps = '41' is outside the allowed range 1..40; using 40" and box.value == "40"
    page.system = "grayscott3d"
    page.size = ro.SIZES[0]
    assert page.param.n_steps.bounds == (1, 50)


def test_scheme_substeps_offered_show_first_and_fourth_order():
    """Each offered doubling of the sub-steps visibly changes the scheme curves, the right way:
    Euler's final error halves (first order), RK4's drops by far more (fourth order, until the
    data's own solver error)."""
    from pages._core import SCHEME_SUBSTEPS, load_surrogates

    from core.datasets import generate
    from core.metrics import evaluate

    assert SCHEME_SUBSTEPS[:3] == (1, 2, 4)
    assert all(b == 2 * a for a, b in zip(SCHEME_SUBSTEPS, SCHEME_SUBSTEPS[1:], strict=False))
    ds = generate(ea.data_config("burgers2d", "cpu", True, 1))
    last = {}
    for m in (1, 2):
        models, problems = load_surrogates(ds, ["euler", "rk4"], scheme_substeps=m)
        rmse = evaluate(models, ds, "test")["rmse"].mean("sample")[:, -1]
        last[m] = {name: float(rmse.sel(model=name)) for name in models}
    assert 1.7 < last[1]["euler"] / last[2]["euler"] < 2.3, last  # measured 2.06
    assert last[1]["rk4"] / last[2]["rk4"] > 8, last  # measured 12.6
    assert last[2]["rk4"] < 1e-4 * last[2]["euler"]


def test_bench_drives_every_model_check_box():
    from core import appbench

    assert appbench.CHOICES == ro.CHOICES == ea.CHOICES


def test_fast_vtk_serializer_sends_the_same_bytes_as_panel():
    """The NumPy conversion of 64-bit cell arrays gives byte for byte what Panel's loop gives."""
    pytest.importorskip("vtk")
    from pages._volume import fast_vtk_serializer
    from panel.pane.vtk import synchronizable_serializer as ser
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonCore import VTK_ID_TYPE, VTK_LONG_LONG

    fast_vtk_serializer()
    fast = ser.SynchronizationContext.getCachedDataArray
    cells = np.array([3, 0, 1, 2, 3, 2, 3, 4, 70000, 7], dtype=np.int64)  # legacy cells: count, ids
    for kind, values in ((VTK_ID_TYPE, cells), (VTK_LONG_LONG, np.append(cells, -5))):
        array = numpy_to_vtk(values, deep=1, array_type=kind)
        ctx = ser.SynchronizationContext()
        ctx.cacheDataArray("key", {"array": array, "mTime": array.GetMTime(), "ts": 0})
        for binary in (True, False):
            assert fast(ctx, "key", binary=binary) == fast.original(ctx, "key", binary=binary)


def test_3d_scene_colours_each_prediction_by_its_log_error():
    """The prediction's surface carries log10 |prediction − truth| as its active scalars, on the
    colour table's range (what vtk.js colours by); the truth's surface is plain grey."""
    pytest.importorskip("pyvista")
    from pages._volume import SceneView

    n = 12
    coords = {d: np.linspace(-1, 1, n) for d in ("z", "y", "x")}
    z, y, x = np.meshgrid(*coords.values(), indexing="ij")
    truth = np.sqrt(x**2 + y**2 + z**2)  # the level 0.5 crosses a sphere
    scene = SceneView(("z", "y", "x"), coords, (0.0, 1.0), ["model"], (1e-4, 1.0), level=0.5)
    scene.update(truth, {"model": truth + 0.01})
    mesh = scene.meshes["model"]
    assert mesh.n_points > 50 and mesh.active_scalars_name == "log_err"
    np.testing.assert_allclose(mesh.active_scalars, -2.0, atol=1e-5)  # log10(0.01)
    assert scene.actors["model"].mapper.scalar_range == pytest.approx((-4.0, 0.0))
    assert not scene.actors["truth"].mapper.scalar_visibility
    bands = scene.colorbar._wb_bar[0].data
    assert bands["left"][0] == pytest.approx(1e-4) and bands["right"][-1] == pytest.approx(1.0)
