"""Dataset stores: every chunk checked, damage named by sample, read-only caches readable, --overwrite
kill-safe, absurd sizes refused before anything runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import core.datasets.sampling as gen_mod
import core.datasets.store as store_mod
import core.io as io_mod
from core.datasets import DatasetConfig, dataset_path, generate, list_datasets, open_dataset
from core.datasets.sampling import estimate
from core.errors import WorkbenchError

TINY = DatasetConfig("burgers2d", n_samples=3, n_coarse=5, k=2, n_bursts=1, burst_len=2, splits=(2, 0, 1),
                     overrides=(("n", (12, 12)),))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    cache = tmp_path_factory.mktemp("integrity")
    generate(TINY, cache=cache)
    return dataset_path(TINY, cache)


@pytest.fixture
def copy(pristine, tmp_path):
    """A private copy of the tiny store in a fresh cache folder."""
    path = tmp_path / "cache" / pristine.name
    shutil.copytree(pristine, path)
    return path


def _chunk(path: Path, var: str, sample: int) -> Path:
    files = [f for f in (path / var / "c" / str(sample)).rglob("*") if f.is_file()]
    assert len(files) == 1  # one chunk per trajectory and variable
    return files[0]


def test_a_deleted_chunk_of_sample_0_is_named_and_never_valid(copy):
    _chunk(copy, "u", 0).unlink()  # reads back as the NaN fill value
    with pytest.raises(WorkbenchError, match=r"is damaged: sample 0: 'u' \(file u/c/0/.*\) is missing"):
        open_dataset(copy)
    row = list_datasets(copy.parent)[0]
    assert row["valid"] is False and "sample 0" in row["error"]
    with pytest.raises(WorkbenchError, match=r"damaged: sample 0.*--overwrite"):  # what training calls
        generate(TINY, cache=copy.parent)


def test_a_truncated_chunk_of_sample_1_is_named(copy):
    chunk = _chunk(copy, "v_fine", 1)
    chunk.write_bytes(chunk.read_bytes()[:-10])
    with pytest.raises(WorkbenchError, match=r"sample 1: 'v_fine' \(file v_fine/c/1/.*\) has \d+ bytes "
                                             r"instead of \d+.*\(damaged sample: 1\)"):
        open_dataset(copy)


def test_same_size_garbage_is_caught_by_the_checksum_that_data_list_uses(copy):
    chunk = _chunk(copy, "u", 2)
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    open_dataset(copy)  # sizes are intact: the cheap check cannot see it
    with pytest.raises(WorkbenchError, match=r"sample 2: 'u' .*CRC-32 differs"):
        open_dataset(copy, verify="checksum")
    assert list_datasets(copy.parent)[0]["valid"] is True  # the app's cheap listing
    assert list_datasets(copy.parent, verify="checksum")[0]["valid"] is False


def test_data_list_verifies_every_byte(copy, capsys):
    from core.cli import main

    chunk = _chunk(copy, "v_fine", 0)
    data = bytearray(chunk.read_bytes())
    data[-3] ^= 0x01
    chunk.write_bytes(bytes(data))
    assert main(["data", "list", "--cache", str(copy.parent)]) == 0
    out = capsys.readouterr().out
    assert "INVALID: damaged: sample 0: 'v_fine'" in out and copy.name in out
    assert main(["data", "list", "--quick", "--cache", str(copy.parent)]) == 0
    assert "INVALID" not in capsys.readouterr().out


def test_several_problems_are_summed_up_in_one_sentence(copy):
    _chunk(copy, "u", 0).unlink()
    _chunk(copy, "v", 2).unlink()
    (copy / "time" / "c" / "0").unlink()
    with pytest.raises(WorkbenchError) as info:
        open_dataset(copy)
    msg = str(info.value)
    assert "and 2 more problems (damaged samples: 0, 2)" in msg and "\n" not in msg


def test_a_store_without_manifest_is_decoded_chunk_by_chunk(copy):
    meta = json.loads((copy / "zarr.json").read_text())
    del meta["attributes"][store_mod.MANIFEST_ATTR]  # as written before the manifest existed
    (copy / "zarr.json").write_text(json.dumps(meta))
    assert open_dataset(copy).sizes["sample"] == 3
    _chunk(copy, "u", 0).unlink()
    with pytest.raises(WorkbenchError, match=r"sample 0: 'u' holds missing or non-finite values"):
        open_dataset(copy)
    chunk = _chunk(copy, "v", 1)
    chunk.write_bytes(chunk.read_bytes()[:-10])
    with pytest.raises(WorkbenchError, match=r"damaged samples: 0, 1"):
        open_dataset(copy)


def test_the_manifest_stays_out_of_the_attributes(pristine):
    ds = open_dataset(pristine)
    assert store_mod.MANIFEST_ATTR not in ds.attrs and ds.attrs["key"] == TINY.key()


def test_a_read_only_cache_with_a_valid_store_is_readable(copy, monkeypatch):
    def unwritable(path):
        raise WorkbenchError(f"directory {str(path)!r} is not writable")

    monkeypatch.setattr(io_mod, "ensure_writable_dir", unwritable)
    monkeypatch.setattr(gen_mod, "simulate_trajectory", lambda *a, **k: pytest.fail("recomputed"))
    ds = generate(TINY, cache=copy.parent)
    assert ds.attrs["key"] == TINY.key() and list_datasets(copy.parent)[0]["valid"]
    with pytest.raises(WorkbenchError, match="not writable"):  # writing is refused before any work
        generate(TINY, cache=copy.parent, overwrite=True)


def test_overwrite_killed_between_renames_keeps_the_previous_store(copy, monkeypatch):
    before = open_dataset(copy).u.values
    real = io_mod.os.replace
    calls = []

    def killed(src, dst):
        calls.append(dst)
        if Path(dst) == copy:  # the moment the new store would be renamed in
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(io_mod.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        generate(TINY, cache=copy.parent, overwrite=True)
    monkeypatch.setattr(io_mod.os, "replace", real)
    assert not copy.exists()
    np.testing.assert_array_equal(open_dataset(copy).u.values, before)  # recovered on reading
    assert sorted(p.name for p in copy.parent.iterdir()) == [copy.name]


def test_data_list_recovers_and_sweeps_killed_runs(copy):
    aside = copy.parent / f".{copy.name}.aside"
    copy.rename(aside)  # a replacement killed after moving the old store aside
    stale = copy.parent / f".{copy.name}.999999999-{io_mod._host_tag()}.1.tmp"  # a dead writer's temp
    stale.mkdir()
    rows = list_datasets(copy.parent)
    assert [r["valid"] for r in rows] == [True] and not stale.exists() and not aside.exists()


def test_overwrite_never_replaces_a_users_folder_of_the_same_name(tmp_path):
    path = dataset_path(TINY, tmp_path)
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    with pytest.raises(WorkbenchError, match="did not write"):
        generate(TINY, cache=tmp_path, overwrite=True)
    assert (path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("kw, message", [
    (dict(n_coarse=10**12), r"1000000000000 coarse frames.*needs about .* TiB of memory at once"),
    (dict(n_samples=10**11), r"100000000000 trajectories.*needs about .* of memory at once"),
    (dict(dt_fine=1e300), r"dt_fine=1e\+300.*would take at least .*e\+\d+ years \(.*e\+30\d solver steps"),
])
def test_what_cannot_finish_is_refused_before_anything_runs(tmp_path, monkeypatch, kw, message):
    monkeypatch.setattr(gen_mod, "template", lambda *a: pytest.fail("allocated"))
    calls = []
    with pytest.raises(WorkbenchError, match=message):
        generate(DatasetConfig("kdv1d", **kw), cache=tmp_path / "c", progress=lambda *a: calls.append(a))
    assert calls == [] and not (tmp_path / "c").exists()


def test_estimate_counts_steps_and_bytes_by_hand():
    cfg = DatasetConfig("kdv1d", n_samples=4, n_coarse=11, k=5, n_bursts=2, burst_len=10, warmup=3).resolved()
    est = estimate(cfg)
    m = round(cfg.dt_fine / 0.005)  # solver dt 0.005, δt 0.04: m = 8
    assert m == 8 and est["values"] == 128
    assert est["steps_per_trajectory"] == 3 + 10 * 5 * 8 and est["steps"] == 4 * 403
    assert est["disk_bytes"] == 4 * 128 * (11 + 2 * 11) * 4
    with pytest.raises(WorkbenchError, match="dt_fine=inf must be a finite positive multiple"):
        DatasetConfig("kdv1d", dt_fine=float("inf"))
