"""core.datasets: structure, burst/coarse consistency, determinism, splits, zarr cache, torch views."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dask.array
import numpy as np
import pytest
import torch

import core.datasets.sampling as gen_mod
from core.datasets import (
    GENERATOR_VERSION,
    CoarseWindows,
    DatasetConfig,
    FineWindows,
    burst_starts,
    dataset_path,
    generate,
    list_datasets,
    open_dataset,
    preset_defaults,
    stack_fields,
    trajectories,
)
from core.errors import WorkbenchError
from core.physics import PRESETS, SYSTEMS, get_system, simulate

#: tiny 1D, 2D and 3D configs (a few hundred solver steps each)
TINY = {
    "kdv1d": DatasetConfig("kdv1d", n_samples=3, n_coarse=7, k=2, n_bursts=2, burst_len=3,
                           overrides=(("n", (32,)),)),
    "burgers2d": DatasetConfig("burgers2d", n_samples=3, n_coarse=6, k=3, n_bursts=2, burst_len=4,
                               overrides=(("n", (16, 16)),)),
    "grayscott3d": DatasetConfig("grayscott3d", n_samples=2, n_coarse=5, k=2, n_bursts=2, burst_len=2,
                                 warmup=4, splits=(1, 0, 1), overrides=(("n", (8, 8, 8)),)),
}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Each tiny config generated once into a module cache."""
    cache = tmp_path_factory.mktemp("ds-cache")
    return {name: generate(cfg, cache=cache) for name, cfg in TINY.items()}, cache


@pytest.mark.parametrize("name", list(TINY))
def test_dims_coords_attrs(made, name):
    ds = made[0][name]
    cfg = TINY[name].resolved()
    system = get_system(cfg.system, cfg.preset, **dict(cfg.overrides))
    dims = system.dims
    assert set(ds.data_vars) == set(system.fields) | {f"{f}_fine" for f in system.fields}
    for f in system.fields:
        assert ds[f].dims == ("sample", "time", *dims)
        assert ds[f].shape == (cfg.n_samples, cfg.n_coarse, *system.n)
        assert ds[f].dtype == np.float32
        assert ds[f"{f}_fine"].dims == ("sample", "burst", "step", *dims)
        assert ds[f"{f}_fine"].shape == (cfg.n_samples, cfg.n_bursts, cfg.burst_len + 1, *system.n)
    dt_fine = round(cfg.dt_fine / system.dt) * system.dt
    np.testing.assert_allclose(ds.time.values, np.arange(cfg.n_coarse) * cfg.k * dt_fine, rtol=1e-12)
    np.testing.assert_allclose(ds.fine_time.values, np.arange(cfg.burst_len + 1) * dt_fine, rtol=1e-12)
    assert ds.step.values.tolist() == list(range(cfg.burst_len + 1))
    assert ds.burst_start.values.tolist() == burst_starts(cfg)
    for d, c in system.coords().items():
        np.testing.assert_allclose(ds[d].values, c)
    a = ds.attrs
    assert (a["system"], a["preset"], a["k"], a["n_coarse"], a["burst_len"], a["n_bursts"]) == (
        cfg.system, "cpu", cfg.k, cfg.n_coarse, cfg.burst_len, cfg.n_bursts)
    assert a["params"] == pytest.approx(system.params())
    assert a["method"] == system.method and a["dt"] == system.dt
    assert a["dt_coarse"] == pytest.approx(cfg.k * a["dt_fine"])
    assert a["generator_version"] == GENERATOR_VERSION and a["key"] == cfg.key()
    assert a["latex"] == system.latex and a["ic"] == system.ic_kinds[0] and a["seed"] == 0
    assert a["warmup"] == cfg.warmup and a["n_samples"] == cfg.n_samples and "command" in a
    assert list(ds.split.values.astype(str)) == (
        ["train", "val", "test"] if cfg.n_samples == 3 else ["train", "test"])  # 3·0.2 = 0.6 rounds to 1


@pytest.mark.parametrize("name", list(TINY))
def test_bursts_and_coarse_match_an_independent_run(made, name):
    """One uninterrupted reference run recorded every δt gives both the coarse frames and the bursts."""
    ds = made[0][name]
    cfg = TINY[name].resolved()
    system = get_system(cfg.system, cfg.preset, **dict(cfg.overrides))
    m = round(cfg.dt_fine / system.dt)
    for s in range(cfg.n_samples):
        u0 = system.initial_condition(np.random.default_rng([cfg.seed, s]), cfg.ic)
        if cfg.warmup:
            u0 = simulate(system, u0, cfg.warmup, record_every=cfg.warmup)[-1]
        ref = simulate(system, u0, (cfg.n_coarse - 1) * cfg.k * m, record_every=m)  # (fine frames, C, *n)
        coarse = stack_fields(ds.isel(sample=[s]))[0]  # (T, C, *n)
        np.testing.assert_allclose(coarse, ref[::cfg.k].astype(np.float32), rtol=1e-6, atol=1e-6)
        fine = stack_fields(ds.isel(sample=[s]), [f"{f}_fine" for f in system.fields])[0]  # (B, L+1, C, *n)
        for b, start in enumerate(ds.burst_start.values):
            np.testing.assert_allclose(fine[b], ref[start * cfg.k:start * cfg.k + cfg.burst_len + 1],
                                       rtol=1e-6, atol=1e-6)
            # step k of a burst is the next coarse frame of the same run: identical float32 values
            np.testing.assert_array_equal(fine[b, cfg.k], coarse[start + 1])
            np.testing.assert_array_equal(fine[b, 0], coarse[start])


def test_same_seed_identical_different_seed_differs(made, tmp_path):
    cfg = TINY["burgers2d"]
    calls = []
    again = generate(cfg, cache=tmp_path / "a", progress=lambda d, t, m: calls.append((d, t, m)))
    r = cfg.resolved()
    steps = r.n_samples * (r.warmup + (r.n_coarse - 1) * r.k * round(r.dt_fine / get_system("burgers2d").dt))
    assert calls[-1][:2] == (steps, steps) and "trajectory 3/3" in calls[-1][2]
    assert [d for d, _, _ in calls] == sorted(d for d, _, _ in calls)  # monotone
    other = generate(DatasetConfig(**{**cfg.__dict__, "seed": 1}), cache=tmp_path / "b")
    first = made[0]["burgers2d"]
    np.testing.assert_array_equal(again.u.values, first.u.values)
    np.testing.assert_array_equal(again.v_fine.values, first.v_fine.values)
    assert not np.allclose(other.u.values[:, 0], first.u.values[:, 0])
    # samples of one dataset are different trajectories
    assert not np.allclose(first.u.values[0, 0], first.u.values[1, 0])


def test_splits_by_trajectory():
    assert DatasetConfig("burgers2d", n_samples=8).split_counts == (4, 2, 2)  # 4.8→4, 1.6→2, 1.6→2
    assert DatasetConfig("burgers2d", n_samples=10).split_counts == (6, 2, 2)
    assert DatasetConfig("burgers2d", n_samples=2).split_counts == (1, 0, 1)
    assert DatasetConfig("burgers2d", n_samples=5, splits=(3, 1, 1)).split_counts == (3, 1, 1)
    for bad in [(0.5, 0.5, 0.0), (0.7, 0.2, 0.2), (3, 1, 0), (1, 1, 1, 1), (-1, 4, 2)]:
        with pytest.raises(WorkbenchError):
            DatasetConfig("burgers2d", n_samples=5, splits=bad)


def test_split_coordinate_disjoint(made):
    ds = made[0]["burgers2d"]
    parts = {s: set(np.flatnonzero(ds.split.values.astype(str) == s)) for s in ("train", "val", "test")}
    assert parts["train"].isdisjoint(parts["test"]) and parts["train"].isdisjoint(parts["val"])
    assert parts["train"] | parts["val"] | parts["test"] == set(range(ds.sizes["sample"]))
    tr, te = trajectories(ds, "train"), trajectories(ds, "test")
    assert tr.shape[0] == len(parts["train"]) and te.shape[0] == len(parts["test"])
    np.testing.assert_array_equal(te[0, :, 0].numpy(), ds.u.values[sorted(parts["test"])[0]])


def test_preset_defaults_every_system():
    for name in SYSTEMS:
        for preset in PRESETS:
            d = preset_defaults(name, preset)
            system = get_system(name, preset)
            assert d["dt_fine"] == pytest.approx(d["dt_mult"] * system.dt)
            assert d["dt_coarse"] == pytest.approx(d["k"] * d["dt_fine"])
            assert 4 <= d["k"] <= 10 and d["burst_len"] >= d["k"] and d["n_bursts"] >= 1
            cfg = DatasetConfig(name, preset).resolved()
            assert (cfg.k, cfg.n_coarse, cfg.warmup) == (d["k"], d["n_coarse"], d["warmup"])
            assert len(burst_starts(cfg)) == d["n_bursts"]


def test_bad_configs_name_the_value():
    system = get_system("burgers2d", "cpu")
    with pytest.raises(WorkbenchError, match=f"dt_fine={1.5 * system.dt:g}.*dt={system.dt:g}"):
        DatasetConfig("burgers2d", dt_fine=1.5 * system.dt).resolved()
    cases = [dict(system="nope"), dict(system="burgers2d", preset="huge"),
             dict(system="burgers2d", dt_fine=-1.0),
             dict(system="burgers2d", k=0), dict(system="burgers2d", n_samples=1),
             dict(system="burgers2d", ic="nope"), dict(system="burgers2d", overrides=(("n", (4, 4)),)),
             dict(system="burgers2d", overrides=(("dt", 1.0),))]
    for kw in cases:
        with pytest.raises(WorkbenchError):
            DatasetConfig(**kw)
    with pytest.raises(WorkbenchError, match="burst_len=2 must be >= k=3"):
        DatasetConfig("burgers2d", k=3, burst_len=2).resolved()
    with pytest.raises(WorkbenchError, match="n_bursts=9"):
        DatasetConfig("burgers2d", k=2, burst_len=2, n_coarse=5, n_bursts=9).resolved()


def test_burst_starts_spread():
    cfg = DatasetConfig("burgers2d", k=5, burst_len=10, n_coarse=101, n_bursts=4).resolved()
    assert burst_starts(cfg) == [0, 33, 65, 98]  # last start 100 - 2 = 98, evenly spread
    one = DatasetConfig("burgers2d", k=5, burst_len=7, n_coarse=11, n_bursts=1).resolved()
    assert burst_starts(one) == [0]


def test_zarr_round_trip_is_lazy_and_equal(made):
    cfg = TINY["kdv1d"].resolved()
    ds = open_dataset(dataset_path(cfg, made[1]))
    assert isinstance(ds.u.data, dask.array.Array) and isinstance(ds.u_fine.data, dask.array.Array)
    direct = gen_mod.simulate_trajectory(cfg, 1)
    np.testing.assert_array_equal(ds.u.values[1], direct["coarse"][:, 0])
    np.testing.assert_array_equal(ds.u_fine.values[1], direct["fine"][:, :, 0])


def test_cache_hit_does_not_recompute(made, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("recomputed")

    monkeypatch.setattr(gen_mod, "simulate_trajectory", boom)
    ds = generate(TINY["burgers2d"], cache=made[1])
    assert ds.attrs["key"] == TINY["burgers2d"].key()
    with pytest.raises(AssertionError, match="recomputed"):  # the patch is live: overwrite recomputes
        generate(TINY["burgers2d"], cache=made[1], overwrite=True)
    assert open_dataset(dataset_path(TINY["burgers2d"], made[1])).sizes["sample"] == 3  # old store intact


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_corrupted_store_raises_and_is_regenerated(tmp_path):
    cfg = TINY["kdv1d"]
    ds = generate(cfg, cache=tmp_path)
    path = dataset_path(cfg, tmp_path)
    (path / "zarr.json").write_text("{ not json")
    with pytest.raises(WorkbenchError, match="corrupted.*regenerate"):
        open_dataset(path)
    with pytest.raises(WorkbenchError, match="overwrite"):  # never replaced silently
        generate(cfg, cache=tmp_path)
    regenerated = generate(cfg, cache=tmp_path, overwrite=True)
    np.testing.assert_array_equal(regenerated.u.values, ds.u.values)
    chunks = sorted((path / "u" / "c").rglob("*"))
    last = [c for c in chunks if c.is_file() and c.relative_to(path / "u" / "c").parts[0] == "2"]
    last[0].write_bytes(b"garbage")
    with pytest.raises(WorkbenchError, match=str(path.name)):
        open_dataset(path)
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"]["generator_version"] = "0"
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(WorkbenchError, match="generator version"):
        open_dataset(path)


def test_unwritable_cache_and_failures_leave_nothing(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(WorkbenchError, match="not writable"):
        generate(TINY["kdv1d"], cache=blocker / "cache")
    assert blocker.read_text() == "not a folder"
    real = gen_mod.simulate_trajectory

    def fail_on_second(config, s, progress=None):
        if s == 1:
            raise WorkbenchError("trajectory 1 blew up")
        return real(config, s)

    monkeypatch.setattr(gen_mod, "simulate_trajectory", fail_on_second)
    with pytest.raises(WorkbenchError, match="blew up"):
        generate(TINY["kdv1d"], cache=tmp_path / "c")
    assert _leftovers(tmp_path / "c") == []  # no partial store, no temporary folder


def test_list_datasets(made):
    rows = list_datasets(made[1])
    assert {r["key"] for r in rows} >= {cfg.key() for cfg in TINY.values()}
    row = next(r for r in rows if r["key"] == TINY["grayscott3d"].key())
    assert row["system"] == "grayscott3d" and row["n_samples"] == 2 and row["valid"]
    assert row["sizes"]["z"] == 8 and Path(row["path"]).exists() and row["bytes"] > 0


def test_torch_views_shapes_and_targets(made):
    ds = made[0]["burgers2d"]
    cfg = TINY["burgers2d"].resolved()
    train = np.flatnonzero(ds.split.values.astype(str) == "train")
    fw = FineWindows(ds, "train", length=2)
    assert len(fw) == len(train) * cfg.n_bursts * (cfg.burst_len + 1 - 2)
    x0, target = fw[len(fw) - 1]  # last sample, last burst, last start
    assert x0.shape == (2, 16, 16) and target.shape == (2, 2, 16, 16) and x0.dtype == torch.float32
    s, b, i = train[-1], cfg.n_bursts - 1, cfg.burst_len - 2
    np.testing.assert_array_equal(x0[1].numpy(), ds.v_fine.values[s, b, i])
    np.testing.assert_array_equal(target[:, 0].numpy(), ds.u_fine.values[s, b, i + 1:i + 3])
    cw = CoarseWindows(ds, "test", length=3)
    test = np.flatnonzero(ds.split.values.astype(str) == "test")
    assert len(cw) == len(test) * (cfg.n_coarse - 3)
    x0, target = cw[1]
    np.testing.assert_array_equal(x0[0].numpy(), ds.u.values[test[0], 1])
    np.testing.assert_array_equal(target[:, 1].numpy(), ds.v.values[test[0], 2:5])
    assert stack_fields(ds).shape == (3, cfg.n_coarse, 2, 16, 16)
    with pytest.raises(WorkbenchError):
        CoarseWindows(ds, "train", length=cfg.n_coarse)
    with pytest.raises(WorkbenchError):
        trajectories(ds, "training")


def test_torch_views_in_a_dataloader(made):
    ds = made[0]["kdv1d"]
    loader = torch.utils.data.DataLoader(FineWindows(ds, "train", length=1), batch_size=4, shuffle=False)
    x0, target = next(iter(loader))
    assert x0.shape == (4, 1, 32) and target.shape == (4, 1, 1, 32)


def test_cache_dir_default_is_the_env_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "env-cache"))
    assert dataset_path(TINY["kdv1d"]).parent == tmp_path / "env-cache"
    assert os.environ["WORKBENCH_CACHE"].endswith("env-cache")


def test_docstring_table_matches_preset_defaults():
    """The table in core.datasets' docstring is what `preset_defaults` resolves to."""
    import core.datasets

    rows = [r.split("|")[1:-1] for r in core.datasets.__doc__.splitlines()
            if r.startswith("| ") and r.split("|")[1].strip() in SYSTEMS]
    assert len(rows) == len(SYSTEMS) * len(PRESETS)
    for row in rows:
        name, preset, dt, fine, k, dt_coarse, n_coarse, t_end, bursts, warmup = (c.strip() for c in row)
        d = preset_defaults(name, preset)
        assert float(dt) == pytest.approx(d["solver_dt"]) and int(k) == d["k"]
        assert fine == f"{fine.split()[0]} ({d['dt_mult']})"
        assert float(fine.split()[0]) == pytest.approx(d["dt_fine"])
        assert float(dt_coarse) == pytest.approx(d["dt_coarse"]) and int(n_coarse) == d["n_coarse"]
        assert float(t_end) == pytest.approx(d["t_end"]) and int(bursts) == d["n_bursts"]
        assert d["warmup"] == (0 if warmup == "0" else int(warmup.split("(")[1].rstrip(")")))
