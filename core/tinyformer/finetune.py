"""Long, resumable fine-tuning of a SparseNAS candidate, then float and int8 top-1 on the same images.

    python -m core nas finetune --id 0 --steps 6000 [--resume]

The candidate's subnet starts from the supernet's weights and is trained on the supernet's training
images (random flips and translations, SGD + Nesterov, cosine learning rate, label smoothing) while it
is pruned to its searched per-layer sparsity: block-magnitude masks re-ranked every `mask_every` steps
on the cubic schedule that reaches the target at `ramp` of the steps, fixed after. A checkpoint
(weights, masks, optimizer, schedule and generator state) is written every `save_every` steps to
`<out>/finetune_<id>.pt`; `resume=True` continues from it, and the result equals an uninterrupted run
(same settings, one torch thread).

At the end BatchNorm is recalibrated, the masks applied, and the model is scored on the first
`test_size` test images in float and through the int8 integer reference (`core.tinyformer.quant`) on
the same images; `finetuned.pt` and the candidates table are updated for that id.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from core.errors import WorkbenchError
from core.io import Progress, atomic_path, no_progress

FORMAT = 1


@dataclass(frozen=True)
class FinetuneConfig:
    steps: int = 6000
    batch: int = 64
    lr: float = 0.02
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    shift: int = 2
    ramp: float = 0.4
    mask_every: int = 20
    save_every: int = 250
    test_size: int = 2000
    calib_size: int = 256
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "mask_every", "save_every", "test_size", "calib_size", "threads"):
            if getattr(self, name) < 1:
                raise WorkbenchError(f"finetune {name} {getattr(self, name)} must be >= 1")
        if not 0 < self.ramp <= 1:
            raise WorkbenchError(f"finetune ramp {self.ramp} must be in (0, 1]")
        if not 0 < self.lr < 10:
            raise WorkbenchError(f"finetune learning rate {self.lr} must be in (0, 10)")


def _state_path(folder: Path, cid: int) -> Path:
    return folder / f"finetune_{cid}.pt"


def finetune_candidate(folder: Path | str, cid: int, cfg: FinetuneConfig, resume: bool = False,
                       checkpoint: Path | str | None = None, root: Path | str | None = None,
                       progress: Progress = no_progress, stop_after: int | None = None,
                       finish: bool = False) -> dict[str, Any] | None:
    """Fine-tune candidate `cid` of `<folder>/candidates.parquet`; returns its scores, or None when
    `stop_after` steps ended the call early (the checkpoint is resumable). `finish`: score the model
    where the run stands now (after `stop_after` more steps, e.g. 0) once its masks are at the target
    sparsity; the checkpoint stays resumable and the scores say how many steps were done."""
    from core.tinyformer import prune
    from core.tinyformer.candidates import load_candidate
    from core.tinyformer.graph import graph_of
    from core.tinyformer.model import extract
    from core.tinyformer.supernet import augment, load_checkpoint, load_images

    folder = Path(folder)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    row = load_candidate(folder / "candidates.parquet", cid)
    sup, space, meta = load_checkpoint(Path(checkpoint) if checkpoint else folder / "supernet.pt")
    arch, target, blocks = row["arch"], row["sparsity_target"], row["block"]
    g = graph_of(arch)
    model = extract(sup, arch)
    x, y = load_images(meta["dataset"], "train", meta["train"]["train_size"], space.resolution, root)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps)
                                                                                / cfg.steps)))
    gen = torch.Generator().manual_seed(cfg.seed)
    ramp = max(1, int(cfg.ramp * cfg.steps))
    masks: dict[str, torch.Tensor] = {}
    step, history, ema = 0, [], None
    path = _state_path(folder, cid)
    ident = {"candidate": cid, "arch": json.dumps(arch, sort_keys=True), "config": dataclasses.asdict(cfg)}
    if resume and path.is_file():
        doc = torch.load(path, map_location="cpu", weights_only=True)
        if doc.get("ident") != ident:
            raise WorkbenchError(f"{str(path)!r} is a fine-tuning run with other settings or another "
                                 "candidate; continue it with those settings or delete it")
        model.load_state_dict(doc["state_dict"])
        opt.load_state_dict(doc["optimizer"])
        sched.load_state_dict(doc["schedule"])
        gen.set_state(doc["generator"])
        masks, step, history = dict(doc["masks"]), int(doc["step"]), list(doc["history"])
        ema = doc["ema"]
    end = cfg.steps if stop_after is None else min(cfg.steps, step + stop_after)
    t0 = time.monotonic()
    while step < end:
        if step < ramp and step % cfg.mask_every == 0 or step == ramp:
            masks = prune.make_masks(model, g, {k: prune.cubic_schedule(step, ramp, s)
                                                for k, s in target.items()}, blocks)
        prune.apply_masks(model, g, masks)
        model.train()
        idx = torch.randint(0, len(y), (cfg.batch,), generator=gen)
        loss = F.cross_entropy(model(augment(x[idx], gen, cfg.shift)), y[idx],
                               label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        progress(step, cfg.steps, f"loss {ema:.3f}")
        if step % cfg.save_every == 0 or step == end:
            history.append({"step": step, "loss_ema": float(ema), "seconds": time.monotonic() - t0})
            doc = {"format": FORMAT, "ident": ident, "state_dict": model.state_dict(),
                   "optimizer": opt.state_dict(), "schedule": sched.state_dict(),
                   "generator": gen.get_state(), "masks": masks, "step": step, "history": history,
                   "ema": float(ema)}
            with atomic_path(path) as tmp:
                torch.save(doc, tmp)
    if step < cfg.steps and not finish:
        return None
    if step < cfg.steps and step <= ramp:
        raise WorkbenchError(f"fine-tuning run {str(path)!r} is at step {step}, before the end of its "
                             f"pruning ramp (step {ramp}); continue it with --resume before scoring it")
    if ramp >= cfg.steps:  # the schedule never reached its target: the final masks now
        masks = prune.make_masks(model, g, target, blocks)
    res = _finish(folder, cid, row, model, g, masks, cfg, meta, space, root, history, step)
    return res


def _finish(folder: Path, cid: int, row: dict[str, Any], model: Any, g: Any, masks: dict,
            cfg: FinetuneConfig, meta: dict, space: Any, root: Any, history: list,
            step: int) -> dict[str, Any]:
    import pandas as pd

    from core.tinyformer import prune
    from core.tinyformer.candidates import _exact_cost, int8_accuracy
    from core.tinyformer.supernet import accuracy, load_images, recalibrate_bn

    blocks = row["block"]
    prune.apply_masks(model, g, masks)
    x, _ = load_images(meta["dataset"], "train", meta["train"]["train_size"], space.resolution, root)
    calib = x[: cfg.calib_size]
    recalibrate_bn(model, calib)
    prune.apply_masks(model, g, masks)
    xt, yt = load_images(meta["dataset"], "test", cfg.test_size, space.resolution, root)
    info = _exact_cost(model, g, {"arch": row["arch"], "block": blocks})
    info["accuracy_test"] = accuracy(model, xt, yt)
    info["accuracy_int8"] = int8_accuracy(model, row["arch"], calib, xt, yt)
    # the fine-tuned weights and the table row
    fpath = folder / "finetuned.pt"
    doc = (torch.load(fpath, map_location="cpu", weights_only=True) if fpath.is_file()
           else {"format": 1, "dataset": meta["dataset"], "candidates": {}})
    doc["candidates"][cid] = {"arch": row["arch"], "sparsity": row["sparsity_target"], "block": blocks,
                              "state_dict": model.state_dict(),
                              "finetune": {"config": dataclasses.asdict(cfg), "history": history,
                                           "steps_done": step}}
    with atomic_path(fpath) as tmp:
        torch.save(doc, tmp)
    table = pd.read_parquet(folder / "candidates.parquet")
    i = table.index[table["id"] == cid][0]
    table.loc[i, "accuracy_test"] = info["accuracy_test"]
    table.loc[i, "accuracy_int8"] = info["accuracy_int8"]
    table.loc[i, "finetuned"] = True
    table.loc[i, "flash_bytes"] = info["flash_bytes"]
    table.loc[i, "flash_kb"] = info["flash_bytes"] / 1024
    table.loc[i, "sparsity"] = json.dumps(info["achieved"])
    table.loc[i, "storage"] = json.dumps(info["format"])
    table.loc[i, "n_sparse_layers"] = sum(v == "sparse" for v in info["format"].values())
    if "test_images" not in table:
        table["test_images"] = math.nan
    table.loc[i, "test_images"] = len(yt)
    from core.tinyformer.candidates import write_candidates

    write_candidates(table, folder / "candidates.parquet")
    return {"id": cid, "float": info["accuracy_test"], "int8": info["accuracy_int8"], "images": len(yt),
            "flash_bytes": info["flash_bytes"], "steps": cfg.steps, "steps_done": step}
