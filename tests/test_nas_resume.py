"""Resumed supernet training and fine-tuning equal uninterrupted runs; SparseNAS on Dask equals local."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from core.errors import WorkbenchError
from core.tinyformer.candidates import run_sparsenas, write_candidates
from core.tinyformer.finetune import FinetuneConfig, finetune_candidate
from core.tinyformer.space import SpaceConfig
from core.tinyformer.sparsenas import SearchConfig
from core.tinyformer.supernet import TrainConfig, train_supernet

TINY = SpaceConfig(name="tiny", resolution=16, ds_widths=(8,), mbv2_widths=(8, 12), mbv2_depths=(1,),
                   vit_dims=(8, 16), vit_mlp=(16,), last_widths=(16,), vit_blocks=(1,), vit_layers=(1,))
SEARCH = SearchConfig(flash_budget=45000, sram_budget=40000, population=4, generations=2, parents=2,
                      val_size=48, calib_size=32, test_size=48, finetune_top=1, finetune_steps=2, int8_size=4,
                      threads=1)
TRAIN = TrainConfig(train_size=96, epochs=3, batch=32, threads=1, shift=2)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("resume")
    train_supernet(TINY, TRAIN, out=d / "supernet.pt")
    return d


def test_supernet_resume_equals_uninterrupted(folder: Path, tmp_path: Path) -> None:
    whole = torch.load(folder / "supernet.pt", weights_only=True)
    train_supernet(TINY, TRAIN, out=tmp_path / "s.pt", stop_after=1)
    train_supernet(TINY, TRAIN, out=tmp_path / "s.pt", resume=True, stop_after=1)
    net = train_supernet(TINY, TRAIN, out=tmp_path / "s.pt", resume=True)
    assert _same(net.state_dict(), whole["state_dict"])
    assert [h["loss_ema"] for h in torch.load(tmp_path / "s.pt", weights_only=True)["history"]] == \
        [h["loss_ema"] for h in whole["history"]]
    with pytest.raises(WorkbenchError, match="other settings"):
        train_supernet(TINY, replace(TRAIN, lr=0.01), out=tmp_path / "s.pt", resume=True)


def test_sparsenas_on_dask_equals_local(folder: Path) -> None:
    distributed = pytest.importorskip("distributed")
    local = run_sparsenas(folder / "supernet.pt", SEARCH, out_dir=None)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        remote = run_sparsenas(folder / "supernet.pt", SEARCH, out_dir=None, scheduler=client)
    pd.testing.assert_frame_equal(local, remote)
    assert (local["latency_ms"] > 0).all() and (local["pareto"] >= 0).all()
    with pytest.raises(WorkbenchError, match="scheduler=42"):
        run_sparsenas(folder / "supernet.pt", SEARCH, scheduler=42)


def test_finetune_resume_equals_uninterrupted(folder: Path, tmp_path: Path) -> None:
    table = run_sparsenas(folder / "supernet.pt", SEARCH, out_dir=folder)
    write_candidates(table, folder / "candidates.parquet")
    cfg = FinetuneConfig(steps=6, batch=16, mask_every=2, save_every=2, test_size=16, calib_size=16)
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        for name in ("candidates.parquet", "supernet.pt"):
            (d / name).write_bytes((folder / name).read_bytes())
    ra = finetune_candidate(a, 1, cfg)
    assert finetune_candidate(b, 1, cfg, stop_after=3) is None
    early = finetune_candidate(b, 1, cfg, resume=True, stop_after=0, finish=True)  # scored mid-run
    assert early["steps_done"] == 3 and 0 <= early["int8"] <= 1
    rb = finetune_candidate(b, 1, cfg, resume=True)
    assert ra == rb
    sa, sb = (torch.load(d / "finetuned.pt", weights_only=True)["candidates"][1]["state_dict"]
              for d in (a, b))
    assert _same(sa, sb)
    row = pd.read_parquet(a / "candidates.parquet").set_index("id").loc[1]
    assert bool(row["finetuned"]) and row["accuracy_int8"] == ra["int8"] and row["test_images"] == 16
