"""Datasets: shapes10 determinism/balance, the CIFAR-10 loader on a tiny archive in the official layout."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from core.errors import WorkbenchError
from core.tinyformer import data


def test_shapes10_deterministic_balanced_prefix_stable() -> None:
    a = data.get_dataset("shapes10", "test", n=40)
    b = data.get_dataset("shapes10", "test", n=40)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.images.shape == (40, 32, 32, 3) and a.images.dtype == np.uint8
    longer = data.get_dataset("shapes10", "test", n=60)
    np.testing.assert_array_equal(longer.images[:40], a.images)
    imgs, labels = data.make_shapes10(100, seed=3)
    assert np.bincount(labels, minlength=10).tolist() == [10] * 10
    x, y = a[0]
    assert x.shape == (3, 32, 32) and float(x.min()) >= -2.0 and float(x.max()) < 2.0
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy() * 64 + 128, a.images[0])
    assert not np.array_equal(data.get_dataset("shapes10", "train", n=5).images, a.images[:5])


def _write_cifar(root: Path, n: int = 4, corrupt: str | None = None) -> Path:
    """A tiny archive in the official cifar-10-python layout, written by pickle like the original."""
    rng = np.random.default_rng(0)
    base = root / "build" / "cifar-10-batches-py"
    base.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"labels": [(k + i) % 10 for i in range(n)], b"batch_label": name.encode()}
        (base / name).write_bytes(pickle.dumps(d))
    meta = {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072}
    (base / "batches.meta").write_bytes(pickle.dumps(meta))
    if corrupt == "missing":
        (base / "data_batch_3").unlink()
    elif corrupt == "garbage":
        (base / "test_batch").write_bytes(b"\x80\x04not a pickle")
    elif corrupt == "evil":
        (base / "test_batch").write_bytes(pickle.dumps({b"data": io.BytesIO(b"x")}))
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(base, arcname="cifar-10-batches-py")
    return archive


def test_cifar_loader_on_tiny_archive(tmp_path: Path) -> None:
    archive = _write_cifar(tmp_path)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    dest = tmp_path / "dest"
    data.download_cifar10(dest, url=archive.as_uri(), md5=md5)
    train = data.get_dataset("cifar10", "train", root=dest)
    test = data.get_dataset("cifar10", "test", root=dest)
    assert len(train) == 20 and len(test) == 4 and train.classes[3] == "c3"
    raw = pickle.loads((tmp_path / "build/cifar-10-batches-py/test_batch").read_bytes())
    # official rows are 1024 R, then G, then B values of a 32×32 image in row-major order
    assert test.images[1, 2, 5, 0] == raw[b"data"][1][2 * 32 + 5]
    assert test.images[1, 2, 5, 2] == raw[b"data"][1][2048 + 2 * 32 + 5]
    assert test.labels.tolist() == [5, 6, 7, 8]


def test_cifar_checksum_and_corruption(tmp_path: Path) -> None:
    archive = _write_cifar(tmp_path / "a")
    with pytest.raises(WorkbenchError, match="MD5"):
        data.download_cifar10(tmp_path / "d1", url=archive.as_uri())  # the official checksum cannot match
    for corrupt, match in (("missing", "missing"), ("garbage", "corrupted"), ("evil", "corrupted")):
        arch = _write_cifar(tmp_path / corrupt, corrupt=corrupt)
        dest = tmp_path / f"dest-{corrupt}"
        data.download_cifar10(dest, url=arch.as_uri(), md5=hashlib.md5(arch.read_bytes()).hexdigest())
        split = "train" if corrupt == "missing" else "test"
        with pytest.raises(WorkbenchError, match=match):
            data.get_dataset("cifar10", split, root=dest)
    with pytest.raises(WorkbenchError, match="missing"):
        data.get_dataset("cifar10", "train", root=tmp_path / "nowhere")


def test_bad_names() -> None:
    with pytest.raises(WorkbenchError, match="unknown dataset 'mnist'"):
        data.get_dataset("mnist", "train")
    with pytest.raises(WorkbenchError, match="unknown split"):
        data.get_dataset("shapes10", "val")
