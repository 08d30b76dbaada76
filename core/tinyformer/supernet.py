"""Weight-sharing supernet and SPOS (single-path one-shot) training.

The supernet is `TinyFormerNet` sized for the largest path of a `SpaceConfig`, with every
downsample kind of the space available per stage. A subnet uses leading slices of the shared
weights (`core.tinyformer.model`). Training (Guo et al., SPOS): at every step one path is drawn
uniformly (`space.sample`) and only it is trained on that batch: SGD + Nesterov momentum, cosine
learning rate, label smoothing, random horizontal flips (every shapes10/CIFAR-10 class is
flip-invariant) and, with `TrainConfig.shift` > 0, random translations by up to `shift` pixels
(edge-replicated).

Checkpoints are plain dicts of tensors, numbers and strings (`torch.load(weights_only=True)`):
`{"format", "space", "train", "dataset", "history", "state_dict", "resume"}`. `resume` holds what an
exact continuation needs after each epoch (optimizer and schedule state, the path sampler's and the
batch generator's states): `train_supernet(..., resume=True)` continues an interrupted run from its
last epoch, and the result equals the uninterrupted run's (same settings, one torch thread).
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from core.errors import WorkbenchError, brief
from core.io import Progress, atomic_path, no_progress
from core.tinyformer import data as tfdata
from core.tinyformer.model import TinyFormerNet, extract
from core.tinyformer.space import SpaceConfig, extreme, sample

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    """SPOS training settings (sized so that the offline run takes minutes on 2 CPU cores)."""

    dataset: str = "shapes10"
    train_size: int = 4000
    epochs: int = 3
    batch: int = 64
    lr: float = 0.05
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    seed: int = 0
    threads: int = 2
    shift: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.shift <= 8:
            raise WorkbenchError(f"shift {self.shift} is not allowed; use 0 to 8 pixels")
        if self.dataset not in tfdata.DATASETS:
            raise WorkbenchError(f"unknown dataset {self.dataset!r}; known: {', '.join(tfdata.DATASETS)}")
        for name in ("train_size", "epochs", "batch", "threads"):
            if getattr(self, name) < 1:
                raise WorkbenchError(f"{name} {getattr(self, name)} must be >= 1")
        if not 0 < self.lr < 10:
            raise WorkbenchError(f"learning rate {self.lr} must be in (0, 10)")


def make_supernet(space: SpaceConfig) -> TinyFormerNet:
    """The supernet of `space`: the largest path, with every downsample kind per stage."""
    kind = "mbv2" if "mbv2" in space.ds_kinds else space.ds_kinds[0]
    shape = extreme(space, largest=True, kind=kind, pool="attn" if "attn" in space.pools else "avg")
    return TinyFormerNet(shape, [tuple(space.ds_kinds)] * space.n_downsample)


def load_images(
    dataset: str, split: str, n: int | None, resolution: int, root: Path | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) tensors of a dataset split, resized to the space's resolution."""
    ds = tfdata.get_dataset(dataset, split, root=root, n=n)
    x, y = ds.tensors(n)
    return tfdata.resize(x, resolution), y


def augment(xb: torch.Tensor, gen: torch.Generator, shift: int) -> torch.Tensor:
    """Random horizontal flips and (shift > 0) translations by up to `shift` pixels, edge-replicated."""
    flip = torch.rand(len(xb), generator=gen) < 0.5
    xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
    if shift == 0:
        return xb
    h, w = xb.shape[-2:]
    pad = F.pad(xb, (shift, shift, shift, shift), mode="replicate")
    dy, dx = torch.randint(0, 2 * shift + 1, (2, len(xb)), generator=gen).tolist()
    return torch.stack([pad[i, :, a : a + h, b : b + w] for i, (a, b) in enumerate(zip(dy, dx))])


def _resume_state(path: Path | None, space: SpaceConfig, cfg: TrainConfig) -> dict[str, Any] | None:
    """The checkpoint at `path` when it is an unfinished run of the same space and settings."""
    if path is None or not Path(path).is_file():
        return None
    doc = torch.load(path, map_location="cpu", weights_only=True)
    if doc.get("resume") is None:
        return None
    if doc["space"] != dataclasses.asdict(space) or doc["train"] != dataclasses.asdict(cfg):
        raise WorkbenchError(
            f"checkpoint {str(path)!r} is a run with other settings (space {doc['space'].get('name')}, "
            f"train {doc['train']}); continue it with those settings or write to another --out"
        )
    return doc


def train_supernet(
    space: SpaceConfig,
    cfg: TrainConfig,
    out: Path | None = None,
    root: Path | str | None = None,
    progress: Progress = no_progress,
    init: Path | str | None = None,
    resume: bool = False,
    stop_after: int | None = None,
) -> TinyFormerNet:
    """SPOS-train the supernet of `space`; write a checkpoint to `out` after every epoch.

    `init` warm-starts from a checkpoint of the same space (training continues; its history is kept,
    each entry tagged with the settings of the run that made it). `resume` continues the run in
    `out` exactly where its last checkpoint left it (same space and settings), so that an interrupted
    and resumed run ends with the weights of an uninterrupted one. `stop_after` ends this call after
    that many epochs (the checkpoint stays resumable).
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    net = make_supernet(space)
    history: list[dict[str, Any]] = []
    if init is not None:
        start, start_space, meta = load_checkpoint(init)
        if start_space != space:
            raise WorkbenchError(
                f"checkpoint {str(init)!r} is for space {start_space.name}, not {space.name}"
            )
        net.load_state_dict(start.state_dict())
        history = list(meta["history"])
    x, y = load_images(cfg.dataset, "train", cfg.train_size, space.resolution, root)
    steps_per_epoch = max(1, len(y) // cfg.batch)
    total = steps_per_epoch * cfg.epochs
    opt = torch.optim.SGD(
        net.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    first, ema = 0, None
    doc = _resume_state(out, space, cfg) if resume else None
    if doc is not None:
        net.load_state_dict(doc["state_dict"])
        opt.load_state_dict(doc["resume"]["optimizer"])
        sched.load_state_dict(doc["resume"]["schedule"])
        rng.setstate(_tuples(doc["resume"]["sampler"]))
        gen.set_state(doc["resume"]["generator"])
        first, ema, history = int(doc["resume"]["epoch"]), doc["resume"]["ema"], list(doc["history"])
    step, t0 = first * steps_per_epoch, time.monotonic()
    last = cfg.epochs if stop_after is None else min(cfg.epochs, first + stop_after)
    for epoch in range(first, last):
        net.train()
        order = torch.randperm(len(y), generator=gen)
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch : (i + 1) * cfg.batch]
            xb, yb = augment(x[idx], gen, cfg.shift), y[idx]
            loss = F.cross_entropy(net(xb, sample(space, rng)), yb, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
            progress(step, total, f"epoch {epoch + 1}/{cfg.epochs} loss {ema:.3f}")
        history.append(
            {
                "epoch": epoch + 1,
                "loss_ema": float(ema),
                "seconds": time.monotonic() - t0,
                "run": dataclasses.asdict(cfg),
            }
        )
        if out is not None:
            state = {"epoch": epoch + 1, "ema": float(ema), "optimizer": opt.state_dict(),
                     "schedule": sched.state_dict(), "sampler": rng.getstate(), "generator": gen.get_state()}
            save_checkpoint(out, net, space, cfg, history, state)
    return net


def _tuples(v: Any) -> Any:
    """`random.getstate()` after a round trip through torch.save (lists back to tuples)."""
    return tuple(_tuples(e) for e in v) if isinstance(v, (list, tuple)) else v


def save_checkpoint(
    path: Path,
    net: TinyFormerNet,
    space: SpaceConfig,
    cfg: TrainConfig,
    history: list[dict[str, float]],
    resume: dict[str, Any] | None = None,
) -> Path:
    """Atomically write a weights_only-loadable checkpoint (`resume`: state to continue the run)."""
    doc = {
        "format": CHECKPOINT_FORMAT,
        "space": dataclasses.asdict(space),
        "train": dataclasses.asdict(cfg),
        "dataset": cfg.dataset,
        "history": history,
        "state_dict": net.state_dict(),
        "resume": resume,
    }
    with atomic_path(Path(path)) as tmp:
        torch.save(doc, tmp)
    return Path(path)


def space_from_dict(d: dict[str, Any]) -> SpaceConfig:
    """A `SpaceConfig` from its `asdict` form (lists back to tuples)."""
    fields = {f.name for f in dataclasses.fields(SpaceConfig)}
    unknown_keys = set(d) - fields
    if unknown_keys:
        raise WorkbenchError(
            f"space has unknown fields {sorted(unknown_keys)}; known: {', '.join(sorted(fields))}"
        )
    return SpaceConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def load_checkpoint(path: Path | str) -> tuple[TinyFormerNet, SpaceConfig, dict[str, Any]]:
    """(supernet, space, metadata) from a checkpoint written by `save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(
            f"supernet checkpoint {str(path)!r} does not exist; train one with `python -m core nas supernet`"
        )
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt/unsafe file
        raise WorkbenchError(f"supernet checkpoint {str(path)!r} could not be read ({brief(exc)})") from exc
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        raise WorkbenchError(
            f"{str(path)!r} is not a TinyFormer supernet checkpoint (format {CHECKPOINT_FORMAT})"
        )
    try:
        space = space_from_dict(doc["space"])
        net = make_supernet(space)
        net.load_state_dict(doc["state_dict"])
    except Exception as exc:  # noqa: BLE001 -- garbled metadata or weights of another space
        raise WorkbenchError(f"supernet checkpoint {str(path)!r} is damaged or inconsistent ({brief(exc)}); "
                             "train it again with `python -m core nas supernet`") from exc
    return net, space, {k: v for k, v in doc.items() if k != "state_dict"}


@torch.no_grad()
def recalibrate_bn(model: torch.nn.Module, x: torch.Tensor, batch: int = 128) -> None:
    """Re-estimate BatchNorm running statistics of a subnet on `x` (cumulative average), then eval()."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    for i in range(0, len(x), batch):
        model(x[i : i + batch])
    model.eval()


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> float:
    """Top-1 accuracy of `model` (eval mode) on (x, y)."""
    model.eval()
    correct = sum(
        int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum()) for i in range(0, len(y), batch)
    )
    return correct / max(1, len(y))


def subnet(supernet: TinyFormerNet, arch: dict[str, Any], calib: torch.Tensor) -> TinyFormerNet:
    """A standalone model for `arch` with the supernet's weights and recalibrated BatchNorm."""
    model = extract(supernet, arch)
    recalibrate_bn(model, calib)
    return model
