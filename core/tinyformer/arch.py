"""What makes a candidate dict well formed: the keys and value ranges every other module relies on.

`validate_arch` lives here, below both `core.tinyformer.space` (which samples candidates) and
`core.tinyformer.model` (which builds torch modules for them), so that neither imports the other at
module level: `space.build`/`space.arch_of` import the model lazily, the model imports only this.
"""

from __future__ import annotations

from typing import Any

from core.errors import WorkbenchError

DS_KINDS = ("conv_pool", "mbv2")
POOLS = ("avg", "attn")


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise WorkbenchError(f"invalid architecture: {what}")


def _pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def validate_arch(arch: Any) -> None:
    """Raise `WorkbenchError` naming the first malformed field of a candidate dict."""
    _need(isinstance(arch, dict), f"expected a dict, got {type(arch).__name__}")
    keys = {"resolution", "classes", "downsample", "mbv2", "vit", "last", "pool"}
    _need(set(arch) == keys, f"keys {sorted(arch)} differ from {sorted(keys)}")
    _need(_pos_int(arch["resolution"]) and arch["resolution"] % 4 == 0,
          f"resolution {arch['resolution']!r} must be a positive multiple of 4")
    _need(_pos_int(arch["classes"]) and arch["classes"] >= 2, f"classes {arch['classes']!r} must be >= 2")
    ds = arch["downsample"]
    _need(isinstance(ds, list) and len(ds) in (1, 2), f"downsample {ds!r} must be a list of 1 or 2 stages")
    for d in ds:
        _need(isinstance(d, dict) and d.get("kind") in DS_KINDS, f"downsample stage {d!r} has no valid kind")
        want = {"kind", "out"} | ({"expand"} if d["kind"] == "mbv2" else set())
        _need(set(d) == want, f"downsample stage {d!r} must have exactly the keys {sorted(want)}")
        _need(all(_pos_int(d[k]) for k in want - {"kind"}), f"downsample stage {d!r} needs positive ints")
    mb = arch["mbv2"]
    _need(isinstance(mb, dict) and set(mb) == {"out", "expand"}, f"mbv2 {mb!r} must have keys out, expand")
    _need(_pos_int(mb["out"]), f"mbv2 out {mb['out']!r} must be a positive int")
    exp = mb["expand"]
    _need(isinstance(exp, list) and len(exp) >= 1 and all(_pos_int(e) for e in exp),
          f"mbv2 expand {mb['expand']!r} must be a non-empty list of positive ints")
    _need(isinstance(arch["vit"], list), f"vit {arch['vit']!r} must be a list")
    for blk in arch["vit"]:
        _need(isinstance(blk, dict) and set(blk) == {"dim", "heads", "mlp", "layers"},
              f"vit block {blk!r} must have keys dim, heads, mlp, layers")
        _need(all(_pos_int(blk[k]) for k in blk), f"vit block {blk!r} needs positive ints")
        _need(blk["dim"] % blk["heads"] == 0,
              f"vit dim {blk['dim']} is not divisible by {blk['heads']} heads")
    _need(_pos_int(arch["last"]), f"last {arch['last']!r} must be a positive int")
    _need(arch["pool"] in POOLS, f"pool {arch['pool']!r} must be one of {', '.join(POOLS)}")
    size = arch["resolution"] // (2 ** len(ds))
    _need(size >= 1, f"resolution {arch['resolution']} is too small for {len(ds)} downsample stages")
