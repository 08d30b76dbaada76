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
    # the truth view shows the dataset's own frame at step 8; every view got every frame (+ the t=0 one)
    np.testing.assert_allclose(page._views["truth"].source.data["image"][0], truth[8, fi], rtol=1e-6)
    assert all(v.frames_shown == 9 for v in page._views.values())
    rmse = page._data["rmse"]
    assert np.all(rmse["euler"] > 100 * rmse["rk4"])  # the classic-scheme contrast the page teaches
    err = page._views["euler|err"].source.data["image"][0]
    np.testing.assert_allclose(err, np.abs(page._data["pred"]["euler"][7, fi] - truth[8, fi]), rtol=1e-5)
    page.step = 3  # the scrubber replays a stored frame
    np.testing.assert_allclose(page._views["truth"].source.data["image"][0], truth[3, fi], rtol=1e-6)


def test_rollout_page_pause_resume_stop_and_sessions_are_independent(no_checkpoints, notes):
    page, other = ro.RolloutPage(), ro.RolloutPage()
    page.param.update(system="kdv1d", size=ro.SIZES[1], models=["rk4"], substeps=100, n_steps=40)
    paused = threading.Event()

    def pause_at_three(step, _show=page._show_live):
        _show(step)
        if step == 3:
            page.toggle_pause()
            paused.set()

    page._show_live = pause_at_three
    page.start()
    assert paused.wait(240)
    assert page.state == "paused" and page.n_done == 3
    assert isinstance(page._views["truth"], sv.StreamCurve)  # 1D: a curve
    page.toggle_pause()
    page.stop()
    assert page.wait(60)
    assert page.state == "stopped" and 3 <= page.n_done < 40
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
    assert list(m.model.values) == ["euler (dt=Δt)", "rk4 (dt=Δt)"]
    assert any("fno" in n for n in notes)
    overlay = page._plot.object
    kinds = [type(el).__name__ for el in overlay]
    assert kinds.count("Curve") == 2 and kinds.count("Area") == 2  # log scale: bands as areas
    curve = [el for el in overlay if type(el).__name__ == "Curve"][0]
    np.testing.assert_allclose(curve.dimension_values(1), m.rmse.sel(model="euler (dt=Δt)").mean("sample"))
    assert "| euler (dt=Δt) |" in page._table.object and "| rk4 (dt=Δt) |" in page._table.object
    page.param.update(metric="corr", log_y=False, threshold=0.95)  # redraw only, no recompute
    assert page.result["metrics"] is m
    kinds = [type(el).__name__ for el in page._plot.object]
    assert kinds.count("Spread") == 2 and "HLine" in kinds


def test_error_plot_marks_hct_where_the_mean_correlation_first_drops():
    import xarray as xr

    corr = np.array([[[0.99, 0.9, 0.7, 0.6], [0.99, 0.9, 0.8, 0.6]],   # model a: mean 0.99 0.9 0.75 -> 2·Δt
                     [[0.99, 0.99, 0.99, 0.99], [0.99, 0.99, 0.99, 0.99]]])  # model b: never
    dims = ("model", "sample", "time")
    m = xr.Dataset({k: (dims, corr if k == "corr" else 1 - corr) for k in ("rmse", "mae", "rel_l2", "corr")},
                   coords={"model": ["a", "b"], "time": 0.5 * np.arange(1, 5)})
    overlay = ea.error_plot(m, "rmse", True, 0.8)
    vlines = [el for el in overlay if type(el).__name__ == "VLine"]
    assert [v.data for v in vlines] == [1.0]  # only model a, at (3 - 1)·0.5


def test_error_page_trains_on_fewer_trajectories_on_the_fly(no_checkpoints, notes):
    page = ea.ErrorAccumulationPage(system="kdv1d", quick=True, models=["convlstm"], n_train="1 (train now)",
                                    iterations=10, noise=0.05)
    page.compute()
    page.runner.wait(300)
    assert page.runner.error == ""
    assert list(page.result["metrics"].model.values) == ["convlstm (1 traj.)"]
    assert len(page._cache) == 1  # a second compute with the same settings reuses the model


def test_error_page_data_config_longer_macro_step_keeps_the_horizon():
    base = ea.data_config("burgers2d", "cpu", True, 1).resolved()
    longer = ea.data_config("burgers2d", "cpu", True, 2).resolved()
    assert longer.k == 2 * base.k
    assert (longer.n_coarse - 1) * longer.k == (base.n_coarse - 1) * base.k
