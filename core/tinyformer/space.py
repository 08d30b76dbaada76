"""The TinyFormer search space: candidates are plain JSON-able dicts.

A candidate (`arch`) reads top to bottom like the network (input 32×32×3 by default):

```
{"resolution": 32, "classes": 10,
 "downsample": [{"kind": "conv_pool", "out": 16},              # conv3×3 (ReLU6) + maxpool 2×2
                {"kind": "mbv2", "out": 24, "expand": 2}],     # or a stride-2 MobileNetV2 block
 "mbv2": {"out": 32, "expand": [3, 2]},                        # stride-1 MobileNetV2 blocks, depth = len
 "vit": [{"dim": 48, "heads": 2, "mlp": 96, "layers": 1}],     # MobileViT-like blocks on every pixel
 "last": 128,                                                  # last 1×1 conv
 "pool": "avg"}                                                # "avg" | "attn" pooling, then classifier
```

`SpaceConfig` names the choices (widths, depths, D, H, heads); `sample(space, rng)` draws a
uniform single path; `largest(space)` is the supernet. `build(arch)` (torch) and `arch_of(model)`
live in `core.tinyformer.model` and are re-exported here; `graph_of` in `core.tinyformer.graph`.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Any

from core.errors import WorkbenchError
from core.tinyformer.arch import DS_KINDS, POOLS, validate_arch


def _scale(widths: tuple[int, ...], mult: float) -> tuple[int, ...]:
    """Widths × multiplier, rounded to a multiple of 4 (SIMD-friendly, block size 4 divides them)."""
    return tuple(sorted({max(4, int(round(w * mult / 4.0)) * 4) for w in widths}))


@dataclass(frozen=True)
class SpaceConfig:
    """One search space. Channel choices are multiplied by `width_mult` (rounded to multiples of 4)."""

    name: str = "tf-w1.0-d1-r32"
    resolution: int = 32
    n_downsample: int = 1
    width_mult: float = 1.0
    ds_kinds: tuple[str, ...] = DS_KINDS
    ds_widths: tuple[int, ...] = (16, 24)
    ds_expand: tuple[int, ...] = (2, 3, 4)
    mbv2_widths: tuple[int, ...] = (24, 32, 40)
    mbv2_depths: tuple[int, ...] = (1, 2, 3)
    expands: tuple[int, ...] = (2, 3, 4)
    vit_blocks: tuple[int, ...] = (1, 2)
    vit_dims: tuple[int, ...] = (32, 48, 64)
    vit_heads: tuple[int, ...] = (2, 4)
    vit_mlp: tuple[int, ...] = (64, 96, 128)
    vit_layers: tuple[int, ...] = (1, 2, 3)
    last_widths: tuple[int, ...] = (96, 128, 160)
    pools: tuple[str, ...] = POOLS
    classes: int = 10

    def __post_init__(self) -> None:
        if self.resolution < 8 or self.resolution % 4:
            raise WorkbenchError(f"resolution {self.resolution} is not allowed; use a multiple of 4 >= 8")
        if self.n_downsample not in (1, 2):
            raise WorkbenchError(f"n_downsample {self.n_downsample} is not allowed; use 1 or 2")
        if not 0.1 <= self.width_mult <= 4.0:
            raise WorkbenchError(f"width_mult {self.width_mult} is out of range; use 0.1 to 4")
        for kind in self.ds_kinds:
            if kind not in DS_KINDS:
                raise WorkbenchError(f"downsample kind {kind!r} is unknown; known: {', '.join(DS_KINDS)}")
        for pool in self.pools:
            if pool not in POOLS:
                raise WorkbenchError(f"pool {pool!r} is unknown; known: {', '.join(POOLS)}")
        for name in ("ds_widths", "ds_expand", "mbv2_widths", "mbv2_depths", "expands", "vit_blocks",
                     "vit_dims", "vit_heads", "vit_mlp", "vit_layers", "last_widths", "ds_kinds", "pools"):
            vals = getattr(self, name)
            if not vals or (name not in ("ds_kinds", "pools") and min(vals) < 1):
                raise WorkbenchError(f"{name} {vals} must be a non-empty tuple of positive values")
        for d in self.dims:
            for h in self.vit_heads:
                if d % h:
                    raise WorkbenchError(f"embed dim {d} is not divisible by {h} heads; choose dims "
                                         "that every head count divides")
        if self.classes < 2:
            raise WorkbenchError(f"classes {self.classes} must be at least 2")

    # channel choices after the width multiplier
    @property
    def ds_out(self) -> tuple[int, ...]:
        return _scale(self.ds_widths, self.width_mult)

    @property
    def mb_out(self) -> tuple[int, ...]:
        return _scale(self.mbv2_widths, self.width_mult)

    @property
    def dims(self) -> tuple[int, ...]:
        return _scale(self.vit_dims, self.width_mult)

    @property
    def mlps(self) -> tuple[int, ...]:
        return _scale(self.vit_mlp, self.width_mult)

    @property
    def lasts(self) -> tuple[int, ...]:
        return _scale(self.last_widths, self.width_mult)


def sample(space: SpaceConfig, rng: random.Random) -> dict[str, Any]:
    """A uniformly random single path of `space` (every choice independent and uniform)."""
    ds = []
    for _ in range(space.n_downsample):
        kind = rng.choice(space.ds_kinds)
        d: dict[str, Any] = {"kind": kind, "out": rng.choice(space.ds_out)}
        if kind == "mbv2":
            d["expand"] = rng.choice(space.ds_expand)
        ds.append(d)
    depth = rng.choice(space.mbv2_depths)
    vit = [{"dim": rng.choice(space.dims), "heads": rng.choice(space.vit_heads),
            "mlp": rng.choice(space.mlps), "layers": rng.choice(space.vit_layers)}
           for _ in range(rng.choice(space.vit_blocks))]
    return {"resolution": space.resolution, "classes": space.classes, "downsample": ds,
            "mbv2": {"out": rng.choice(space.mb_out),
                     "expand": [rng.choice(space.expands) for _ in range(depth)]},
            "vit": vit, "last": rng.choice(space.lasts), "pool": rng.choice(space.pools)}


def extreme(space: SpaceConfig, largest: bool = True, kind: str | None = None,
            pool: str | None = None) -> dict[str, Any]:
    """The largest (or smallest) path of `space`: every width/depth at its max (min)."""
    pick = max if largest else min
    kind = kind or ("mbv2" if largest and "mbv2" in space.ds_kinds else space.ds_kinds[0])
    ds = []
    for _ in range(space.n_downsample):
        d: dict[str, Any] = {"kind": kind, "out": pick(space.ds_out)}
        if kind == "mbv2":
            d["expand"] = pick(space.ds_expand)
        ds.append(d)
    blk = {"dim": pick(space.dims), "heads": pick(space.vit_heads), "mlp": pick(space.mlps),
           "layers": pick(space.vit_layers)}
    return {"resolution": space.resolution, "classes": space.classes, "downsample": ds,
            "mbv2": {"out": pick(space.mb_out), "expand": [pick(space.expands)] * pick(space.mbv2_depths)},
            "vit": [dict(blk) for _ in range(pick(space.vit_blocks))], "last": pick(space.lasts),
            "pool": pool or ("attn" if largest and "attn" in space.pools else space.pools[0])}


def contains(space: SpaceConfig, arch: dict[str, Any]) -> bool:
    """True when every choice of `arch` is one of `space`'s choices."""
    validate_arch(arch)
    ok = arch["resolution"] == space.resolution and arch["classes"] == space.classes
    ok &= len(arch["downsample"]) == space.n_downsample
    for d in arch["downsample"]:
        ok &= d["kind"] in space.ds_kinds and d["out"] in space.ds_out
        ok &= d.get("expand", space.ds_expand[0]) in space.ds_expand
    ok &= arch["mbv2"]["out"] in space.mb_out and len(arch["mbv2"]["expand"]) in space.mbv2_depths
    ok &= all(e in space.expands for e in arch["mbv2"]["expand"]) and len(arch["vit"]) in space.vit_blocks
    for b in arch["vit"]:
        ok &= b["dim"] in space.dims and b["heads"] in space.vit_heads and b["mlp"] in space.mlps
        ok &= b["layers"] in space.vit_layers
    return bool(ok and arch["last"] in space.lasts and arch["pool"] in space.pools)


def mutate(space: SpaceConfig, arch: dict[str, Any], rng: random.Random, prob: float = 0.2) -> dict[str, Any]:
    """Resample each choice of `arch` with probability `prob` (returns a new dict)."""
    fresh = sample(space, rng)
    out = copy.deepcopy(arch)
    for i in range(space.n_downsample):
        if rng.random() < prob:
            out["downsample"][i] = fresh["downsample"][i]
    if rng.random() < prob:
        out["mbv2"]["out"] = fresh["mbv2"]["out"]
    if rng.random() < prob:
        depth = rng.choice(space.mbv2_depths)
        out["mbv2"]["expand"] = (out["mbv2"]["expand"] + fresh["mbv2"]["expand"] * 3)[:depth]
    out["mbv2"]["expand"] = [rng.choice(space.expands) if rng.random() < prob else e
                             for e in out["mbv2"]["expand"]]
    if rng.random() < prob:
        n = rng.choice(space.vit_blocks)
        out["vit"] = (out["vit"] + fresh["vit"] * 3)[:n]
    for blk, new in zip(out["vit"], fresh["vit"] * 3):
        for key in blk:
            if rng.random() < prob:
                blk[key] = new[key]
    for key in ("last", "pool"):
        if rng.random() < prob:
            out[key] = fresh[key]
    return out


def crossover(a: dict[str, Any], b: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Uniform crossover at the granularity of top-level sections (downsample, mbv2, vit, last, pool)."""
    child = {key: copy.deepcopy(a[key] if rng.random() < 0.5 else b[key])
             for key in ("downsample", "mbv2", "vit", "last", "pool")}
    return {"resolution": a["resolution"], "classes": a["classes"], **child}


def build(arch: dict[str, Any]):  # noqa: ANN201 -- torch is imported lazily
    """A torch `nn.Module` for `arch` (see `core.tinyformer.model.build`)."""
    from core.tinyformer.model import build as _build

    return _build(arch)


def arch_of(model) -> dict[str, Any]:  # noqa: ANN001
    """The candidate dict a model built by `build` implements, read from its structure."""
    from core.tinyformer.model import arch_of as _arch_of

    return _arch_of(model)
