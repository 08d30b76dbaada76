"""Image datasets for TinyFormer: one interface, `get_dataset(name, split, root=None)`.

- "shapes10" (offline default): procedurally generated 10-class 32×32×3 images, the same for the same
  seed on every machine. Five object classes (disc, ring, square, triangle, plus) and five texture
  classes (horizontal bars, vertical bars, diagonal stripes, checkerboard, dot grid), with random
  colours, positions, sizes, periods and phases, a random distractor rectangle, low-contrast draws and
  Gaussian pixel noise, so that a small network does not reach 100%.
- "cifar10": the official python-format batches (`cifar-10-batches-py/data_batch_1..5`,
  `test_batch`, `batches.meta`) under `root` (default `<cache>/cifar10`); `download_cifar10(root)`
  fetches the official tar.gz and checks its MD5. Batches are unpickled with a restricted unpickler
  that only accepts numpy arrays, lists, dicts and bytes (never arbitrary classes).

Every dataset yields `(x, label)` with x float (3, H, W) = (u8 − 128)/64, so that the int8 input of
the deployed model is exactly u8 − 128 with scale 1/64 and zero point 0 (`INPUT_SCALE`).
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from core.errors import WorkbenchError, unknown
from core.io import atomic_path, cache_dir

DATASETS = ("shapes10", "cifar10")
SPLITS = ("train", "test")
INPUT_SCALE = 1.0 / 64.0
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"
SHAPES10_CLASSES = ("disc", "ring", "square", "triangle", "plus", "hbars", "vbars", "diagonal", "checker",
                    "dots")
SHAPES10_SIZES = {"train": 10000, "test": 2000}
_SHAPES10_SEEDS = {"train": 10_001, "test": 20_002}


class ImageArrays(Dataset):
    """uint8 HWC images + int64 labels; items are normalized float CHW tensors."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, name: str, classes: tuple[str, ...]) -> None:
        self.images, self.labels, self.name, self.classes = images, labels.astype(np.int64), name, classes

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(self.images[i].astype(np.float32) - 128.0) * INPUT_SCALE
        return x.permute(2, 0, 1), int(self.labels[i])  # (H, W, C) -> (C, H, W)

    def tensors(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """All (or the first n) items as one float (N, 3, H, W) batch and its labels."""
        imgs = self.images[:n]
        x = torch.from_numpy(imgs.astype(np.float32) - 128.0).permute(0, 3, 1, 2) * INPUT_SCALE
        return x.contiguous(), torch.from_numpy(self.labels[:n])


def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Bilinear (antialiased) resize of a (B, 3, H, W) batch to `resolution`², identity when equal."""
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    return torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear",
                                           antialias=True, align_corners=False)


def _draw(rng: np.random.Generator, label: int, size: int = 32) -> np.ndarray:
    """One shapes10 image (size, size, 3) uint8."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    bg, fg = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if rng.random() < 0.25:  # low-contrast draw: foreground close to background
        fg = bg + rng.uniform(-60, 60, 3)
    cy, cx = rng.uniform(9, size - 9, 2)
    r = rng.uniform(4.5, 9.0)
    period, phase = rng.uniform(4.0, 9.0), rng.uniform(0, 2 * np.pi)
    dy, dx = yy - cy, xx - cx
    masks = {
        0: dy ** 2 + dx ** 2 <= r ** 2,
        1: np.abs(np.sqrt(dy ** 2 + dx ** 2) - r) <= 1.6,
        2: (np.abs(dy) <= r * 0.8) & (np.abs(dx) <= r * 0.8),
        3: (dy <= r * 0.7) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6),
        4: ((np.abs(dy) <= 1.8) & (np.abs(dx) <= r)) | ((np.abs(dx) <= 1.8) & (np.abs(dy) <= r)),
        5: np.sin(2 * np.pi * yy / period + phase) > 0,
        6: np.sin(2 * np.pi * xx / period + phase) > 0,
        7: np.sin(2 * np.pi * (xx + yy * rng.choice([-1, 1])) / (period * 1.4) + phase) > 0,
        8: (np.floor(yy / (period / 1.5) + phase) + np.floor(xx / (period / 1.5))) % 2 == 0,
        9: (np.sin(2 * np.pi * yy / period + phase) > 0.6) & (np.sin(2 * np.pi * xx / period + phase) > 0.6),
    }
    img = np.broadcast_to(bg, (size, size, 3)).copy()
    img[masks[label]] = fg
    if rng.random() < 0.5:  # distractor rectangle that may occlude part of the pattern
        y0, x0 = rng.integers(0, size - 6, 2)
        h, w = rng.integers(3, 9, 2)
        img[y0:y0 + h, x0:x0 + w] = rng.uniform(0, 255, 3)
    img += rng.normal(0, rng.uniform(8, 40), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_shapes10(n: int, seed: int, total: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first n of `total` (default n) balanced shapes10 images (n, 32, 32, 3) uint8 and labels.

    Labels are a seeded permutation of 0..9 repeated; image i is drawn from its own stream
    `default_rng([seed, i])`, so a prefix of the dataset does not depend on how much is generated.
    """
    total = n if total is None else total
    labels = np.random.default_rng(seed).permutation(np.arange(total) % 10)[:n]
    if n == 0:
        return np.zeros((0, 32, 32, 3), np.uint8), labels
    return np.stack([_draw(np.random.default_rng([seed, i]), int(k)) for i, k in enumerate(labels)]), labels


class _ArrayUnpickler(pickle.Unpickler):
    """Accepts only what the official CIFAR batches contain: numpy arrays/dtypes and builtins."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")}

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def _load_batch(path: Path) -> dict:
    if not path.is_file():
        raise WorkbenchError(f"CIFAR-10 batch {str(path)!r} is missing; expected the official "
                             "cifar-10-batches-py layout (run `python -m core nas download-cifar10`)")
    try:
        with open(path, "rb") as f:
            d = _ArrayUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
        if not isinstance(d, dict):
            raise pickle.UnpicklingError("not a dict")
        return d
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise WorkbenchError(f"CIFAR-10 batch {str(path)!r} is corrupted ({exc})") from exc


def _load_cifar10(split: str, root: Path) -> ImageArrays:
    base = root / "cifar-10-batches-py"
    meta = _load_batch(base / "batches.meta")
    names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(b"label_names", []))
    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    images, labels = [], []
    for name in files:
        d = _load_batch(base / name)
        data, lab = d.get(b"data"), d.get(b"labels")
        if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072 or lab is None \
                or len(lab) != data.shape[0]:
            raise WorkbenchError(f"CIFAR-10 batch {str(base / name)!r} is corrupted (bad data/labels fields)")
        images.append(data.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # CHW planes -> HWC
        labels.append(np.asarray(lab, dtype=np.int64))
    if len(names) != 10:
        raise WorkbenchError(f"CIFAR-10 metadata {str(base / 'batches.meta')!r} lists {len(names)} "
                             "labels, not 10")
    return ImageArrays(np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels), "cifar10", names)


def md5_of(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_cifar10(root: Path | str | None = None, url: str = CIFAR_URL, md5: str = CIFAR_MD5) -> Path:
    """Download the official archive to `root`, check its MD5, extract `cifar-10-batches-py/`."""
    root = Path(root) if root is not None else cache_dir() / "cifar10"
    archive = root / "cifar-10-python.tar.gz"
    if not archive.is_file():
        try:
            with atomic_path(archive) as tmp, urllib.request.urlopen(url, timeout=60) as r:
                with open(tmp, "wb") as f:
                    while chunk := r.read(1 << 20):
                        f.write(chunk)
        except OSError as exc:
            raise WorkbenchError(f"could not download CIFAR-10 from {url!r} ({exc}); place "
                                 f"cifar-10-python.tar.gz in {str(root)!r} by hand") from exc
    got = md5_of(archive)
    if got != md5:
        raise WorkbenchError(f"CIFAR-10 archive {str(archive)!r} has MD5 {got}, expected {md5}; "
                             "delete it and retry")
    with tarfile.open(archive, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("cifar-10-batches-py/")]
        tar.extractall(root, members=members, filter="data")
    return root


def get_dataset(name: str, split: str, root: Path | str | None = None, n: int | None = None) -> ImageArrays:
    """The `split` ("train" | "test") of dataset `name`; `n` keeps the first n items (shapes10: generates
    only those, so a small n is fast)."""
    if name not in DATASETS:
        raise unknown("dataset", name, DATASETS)
    if split not in SPLITS:
        raise unknown("split", split, SPLITS)
    if n is not None and n < 1:
        raise WorkbenchError(f"dataset size n={n} must be >= 1")
    if name == "shapes10":
        full = SHAPES10_SIZES[split]
        images, labels = make_shapes10(full if n is None else min(n, full), _SHAPES10_SEEDS[split], full)
        return ImageArrays(images, labels, "shapes10", SHAPES10_CLASSES)
    ds = _load_cifar10(split, Path(root) if root is not None else cache_dir() / "cifar10")
    return ds if n is None else ImageArrays(ds.images[:n], ds.labels[:n], ds.name, ds.classes)
