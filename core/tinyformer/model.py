"""Torch modules of TinyFormer candidates, with channel/depth slicing for the weight-sharing supernet.

One network class serves both uses. `build(arch)` sizes every module exactly for `arch`;
`Supernet` (core.tinyformer.supernet) sizes them for the largest path of a space and runs any
single path by slicing: a subnet uses the first `c` output channels / first `d` blocks / first `L`
layers of each shared weight (OFA/SPOS-style prefix sharing). Module paths equal the graph IR's
`attrs["module"]` (e.g. `vit.0.layers.1.fc1`), so `extract(supernet, arch)` is a prefix slice of
every state-dict entry, and the quantizer finds each op's weights by name.

Input: float images (B, 3, H, W) normalized as (u8 − 128)/64 (see core.tinyformer.data). Tokens are
row-major pixels (n = h·W + w), the order of HWC memory.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.tinyformer.arch import validate_arch

_ACTS = {"none": lambda x: x, "relu": F.relu, "relu6": F.relu6}


class ConvBN(nn.Module):
    """conv (no bias) + BatchNorm + activation; forward slices to the input's channels and `out`."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, depthwise: bool = False,
                 act: str = "relu6") -> None:
        super().__init__()
        self.depthwise, self.act, self.stride = depthwise, act, stride
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=cin if depthwise else 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, out: int | None = None) -> torch.Tensor:
        cin = x.shape[1]
        if self.depthwise:
            out, w = cin, self.conv.weight[:cin]  # (C, 1, k, k)
        else:
            out = out or self.conv.out_channels
            w = self.conv.weight[:out, :cin]  # (out, in, k, k)
        y = F.conv2d(x, w, None, self.stride, self.conv.padding, 1, cin if self.depthwise else 1)
        bn, factor = self.bn, self.bn.momentum
        if self.training and factor is None:  # cumulative average (BN recalibration), as nn.BatchNorm2d
            bn.num_batches_tracked += 1
            factor = 1.0 / float(bn.num_batches_tracked)
        y = F.batch_norm(y, bn.running_mean[:out], bn.running_var[:out], bn.weight[:out], bn.bias[:out],
                         self.training, factor or 0.0, bn.eps)
        return _ACTS[self.act](y)


class Linear(nn.Linear):
    """nn.Linear whose forward uses the input's features and the first `out` outputs."""

    def forward(self, x: torch.Tensor, out: int | None = None) -> torch.Tensor:
        out = out or self.out_features
        return F.linear(x, self.weight[:out, : x.shape[-1]], self.bias[:out])


class LayerNorm(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x.shape[-1]
        return F.layer_norm(x, (d,), self.weight[:d], self.bias[:d], self.eps)


class ConvPool(nn.Module):
    """Tokenizer stage: conv3×3 (ReLU6) + maxpool 2×2."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = ConvBN(cin, cout, 3)

    def forward(self, x: torch.Tensor, cfg: dict[str, Any]) -> torch.Tensor:
        return F.max_pool2d(self.conv(x, cfg["out"]), 2)


class MBV2(nn.Module):
    """Inverted residual: 1×1 expand → 3×3 depthwise (stride) → 1×1 project (+ x when shapes match)."""

    def __init__(self, cin: int, cout: int, expand: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.expand = ConvBN(cin, cin * expand, 1)
        self.dw = ConvBN(cin * expand, cin * expand, 3, stride, depthwise=True)
        self.project = ConvBN(cin * expand, cout, 1, act="none")

    def forward(self, x: torch.Tensor, out: int, expand: int) -> torch.Tensor:
        y = self.project(self.dw(self.expand(x, x.shape[1] * expand)), out)
        return x + y if self.stride == 1 and out == x.shape[1] else y


class TransformerLayer(nn.Module):
    """Pre-LN: x + proj(MHSA(LN x)); x + fc2(ReLU(fc1(LN x))). Works on (B, N, D) tokens."""

    def __init__(self, dim: int, mlp: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = LayerNorm(dim), LayerNorm(dim)
        self.q, self.k, self.v, self.proj = (Linear(dim, dim) for _ in range(4))
        self.fc1, self.fc2 = Linear(dim, mlp), Linear(mlp, dim)

    def forward(self, x: torch.Tensor, heads: int, mlp: int) -> torch.Tensor:
        b, n, d = x.shape
        h = self.ln1(x)
        q, k, v = (m(h, d).view(b, n, heads, d // heads).transpose(1, 2) for m in (self.q, self.k, self.v))
        s = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), dim=-1)  # (B, heads, N, N)
        a = (s @ v).transpose(1, 2).reshape(b, n, d)  # (B, heads, N, dh) -> (B, N, D)
        x = x + self.proj(a, d)
        return x + self.fc2(F.relu(self.fc1(self.ln2(x), mlp)), d)


class MobileViT(nn.Module):
    """conv3×3 → conv1×1 to D → tokens → L layers → conv1×1 back → + x → conv3×3 fuse."""

    def __init__(self, c: int, dim: int, mlp: int, layers: int, heads: int = 0) -> None:
        super().__init__()
        self.heads = heads  # the built model's head count (the supernet takes it from the arch)
        self.local = ConvBN(c, c, 3)
        self.to_tokens = ConvBN(c, dim, 1, act="none")
        self.layers = nn.ModuleList(TransformerLayer(dim, mlp) for _ in range(layers))
        self.back = ConvBN(dim, c, 1)
        self.fuse = ConvBN(c, c, 3)

    def forward(self, x: torch.Tensor, cfg: dict[str, Any]) -> torch.Tensor:
        b, c, hh, ww = x.shape
        y = self.to_tokens(self.local(x, c), cfg["dim"])
        t = y.flatten(2).transpose(1, 2)  # (B, D, H, W) -> (B, N, D), n = h·W + w
        for layer in self.layers[: cfg["layers"]]:
            t = layer(t, cfg["heads"], cfg["mlp"])
        y = t.transpose(1, 2).reshape(b, cfg["dim"], hh, ww)  # (B, N, D) -> (B, D, H, W)
        return self.fuse(x + self.back(y, c), c)


class TinyFormerNet(nn.Module):
    """The network for `shape` (largest sizes) with downsample kinds `kinds[i]` available per stage."""

    def __init__(self, shape: dict[str, Any], kinds: list[tuple[str, ...]]) -> None:
        super().__init__()
        validate_arch(shape)
        self.resolution = shape["resolution"]
        self.downsample = nn.ModuleList()
        cin = 3
        for ds, stage_kinds in zip(shape["downsample"], kinds):
            mods = {"conv_pool": lambda ds=ds, cin=cin: ConvPool(cin, ds["out"]),
                    "mbv2": lambda ds=ds, cin=cin: MBV2(cin, ds["out"], ds.get("expand", 4), 2)}
            self.downsample.append(nn.ModuleDict({k: mods[k]() for k in stage_kinds}))
            cin = ds["out"]
        out = shape["mbv2"]["out"]
        self.blocks = nn.ModuleList()
        for i, e in enumerate(shape["mbv2"]["expand"]):
            self.blocks.append(MBV2(cin if i == 0 else out, out, e, 1))
        self.vit = nn.ModuleList(MobileViT(out, b["dim"], b["mlp"], b["layers"], b["heads"])
                                 for b in shape["vit"])
        self.last = ConvBN(out, shape["last"], 1)
        self.pool = nn.Module()
        if shape["pool"] == "attn":
            self.pool.score = Linear(shape["last"], 1)
        self.classifier = Linear(shape["last"], shape["classes"])
        self.arch = shape

    def forward(self, x: torch.Tensor, arch: dict[str, Any] | None = None) -> torch.Tensor:
        arch = arch or self.arch
        for stage, ds in zip(self.downsample, arch["downsample"]):
            if ds["kind"] == "conv_pool":
                x = stage["conv_pool"](x, ds)
            else:
                x = stage["mbv2"](x, ds["out"], ds["expand"])
        for block, e in zip(self.blocks, arch["mbv2"]["expand"]):
            x = block(x, arch["mbv2"]["out"], e)
        for block, cfg in zip(self.vit, arch["vit"]):
            x = block(x, cfg)
        x = self.last(x, arch["last"])
        if arch["pool"] == "avg":
            x = x.mean(dim=(2, 3))
        else:
            t = x.flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, N, C)
            p = torch.softmax(self.pool.score(t), dim=1)  # (B, N, 1)
            x = (p.transpose(1, 2) @ t).squeeze(1)  # (B, 1, N) @ (B, N, C) -> (B, C)
        return self.classifier(x, arch["classes"])


def build(arch: dict[str, Any]) -> TinyFormerNet:
    """A model sized exactly for `arch` (fresh random weights; seed torch for reproducibility)."""
    return TinyFormerNet(arch, [(ds["kind"],) for ds in arch["downsample"]])


def arch_of(model: TinyFormerNet) -> dict[str, Any]:
    """Read the candidate dict back from a built model's module structure."""
    ds = []
    for stage in model.downsample:
        (kind, mod), = stage.items()
        if kind == "conv_pool":
            ds.append({"kind": kind, "out": mod.conv.conv.out_channels})
        else:
            ds.append({"kind": kind, "out": mod.project.conv.out_channels,
                       "expand": mod.expand.conv.out_channels // mod.expand.conv.in_channels})
    blocks = list(model.blocks)
    vit = [{"dim": b.to_tokens.conv.out_channels, "heads": b.heads, "mlp": b.layers[0].fc1.out_features,
            "layers": len(b.layers)} for b in model.vit]
    return {"resolution": model.resolution, "classes": model.classifier.out_features, "downsample": ds,
            "mbv2": {"out": blocks[0].project.conv.out_channels,
                     "expand": [b.expand.conv.out_channels // b.expand.conv.in_channels for b in blocks]},
            "vit": vit, "last": model.last.conv.out_channels,
            "pool": "attn" if hasattr(model.pool, "score") else "avg"}


def extract(source: TinyFormerNet, arch: dict[str, Any]) -> TinyFormerNet:
    """A standalone model for `arch` whose every tensor is the leading slice of `source`'s."""
    model = build(arch)
    src = source.state_dict()
    state = {}
    for name, t in model.state_dict().items():
        s = src[name]
        state[name] = s[tuple(slice(0, n) for n in t.shape)].clone() if t.dim() else s.clone()
    model.load_state_dict(state)
    return model
