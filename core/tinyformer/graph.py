"""Layer graph IR of a TinyFormer candidate: the one source of truth for MACs, weights and tensors.

`graph_of(arch)` turns a candidate (the plain dict of `core.tinyformer.space`) into a `Graph`: a
topologically ordered tuple of `Op`s over named int8 activation tensors. NAS reads MACs and weight
counts from it, the memory planner (`core.tinyformer.memory`) reads tensor sizes and lifetimes, the
quantizer maps each op to its torch module through `attrs["module"]`, and the engine generates one
kernel call per op.

Layouts (no batch dimension anywhere):

- conv-land tensors are HWC `(H, W, C)` (CMSIS-NN layout);
- token tensors are `(N, D)`; the transformer views an `(H, W, D)` map as `N = H*W` tokens of dim D
  through a `reshape` op, which is a zero-cost view (HWC memory is already token-major): the planner
  gives its output the same buffer as its input;
- attention maps are `(heads, Nq, Nk)`; `softmax` is computed in place (attrs["inplace"] is True), so
  the planner aliases its output with its input as well;
- the pooled feature and the logits are single tokens `(1, C)` and `(1, classes)`.

Weight layouts (`Op.weight_shape`): conv `(out, kh, kw, in)`, depthwise `(C, kh, kw, 1)`, linear
`(out, in)`, layernorm `(D,)` (gamma; beta is its bias). BatchNorm is folded into the preceding conv,
so every conv and linear has a bias of `out` int32 values.

MACs count the multiply-accumulates of conv2d, dwconv2d, linear, matmul_qk and matmul_av:

    conv2d:    Ho·Wo·Cout·kh·kw·Cin          dwconv2d:  Ho·Wo·C·kh·kw
    linear:    N·out·in                       matmul_qk: heads·Nq·Nk·dh = Nq·Nk·D
    matmul_av: heads·Nq·Nk·dh

softmax, layernorm, add and pooling are counted as 0 MACs (they are O(elements), not O(MACs)). Each
kind's MACs, flash, scratch, float and integer semantics and lowering live in `core.tinyformer.ops`;
`attention` (the row-tiled fusion of matmul_qk → softmax → matmul_av, MACs 2·Nq·Nk·D) appears only in
the executed graph of `core.tinyformer.schedule`, never in `graph_of`'s.

Activations: ReLU6 after convs of the MobileNetV2 parts and the conv stem (as in MobileNetV2),
ReLU inside the transformer MLP, none after projections (`attrs["act"]` is "none"|"relu"|"relu6").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from core.errors import WorkbenchError
from core.tinyformer.ops import OPS, kinds_where, op_kind

#: every op kind the IR uses: the registry `core.tinyformer.ops`, where each kind owns its MACs,
#: flash, scratch, float run, quantization, integer reference and lowering
OP_KINDS: tuple[str, ...] = tuple(OPS)

#: op kinds whose output is a view of (shares the buffer of) their first input
ALIAS_KINDS: tuple[str, ...] = kinds_where("aliases_input")


@dataclass(frozen=True)
class TensorSpec:
    """An int8 activation tensor: name and shape without batch (HWC, (N, D) or (heads, N, N))."""

    name: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Op:
    """One layer. `attrs` holds kernel/stride/pad/act/heads/module...; see the module docstring."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    output: str
    attrs: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)
    weight_shape: tuple[int, ...] | None = None
    macs: int = 0
    weight_count: int = 0
    bias_count: int = 0

    def __post_init__(self) -> None:
        if self.kind not in OP_KINDS:
            raise WorkbenchError(f"op {self.name!r} has unknown kind {self.kind!r}; "
                                 f"known: {', '.join(OP_KINDS)}")

    @property
    def aliases_input(self) -> bool:
        """True when the output shares the first input's buffer (reshape views, in-place softmax and
        row-tiled attention)."""
        return op_kind(self.kind).aliases_input or bool(self.attrs.get("inplace", False))


@dataclass(frozen=True)
class Graph:
    """A topologically ordered op sequence over named tensors."""

    tensors: dict[str, TensorSpec]
    ops: tuple[Op, ...]
    input: str
    output: str

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)

    @property
    def params(self) -> int:
        """Deployed parameters: weights + biases (BatchNorm folded), LayerNorm gamma + beta."""
        return sum(op.weight_count + op.bias_count for op in self.ops)

    def op(self, name: str) -> Op:
        for op in self.ops:
            if op.name == name:
                return op
        raise WorkbenchError(f"no op named {name!r} in the graph; it has {len(self.ops)} ops")

    def weighted_ops(self) -> list[Op]:
        """Ops that carry a weight tensor (conv2d, dwconv2d, linear, layernorm)."""
        return [op for op in self.ops if op.weight_shape is not None]


class _Builder:
    """Appends ops and their output tensors, computing shapes, MACs and weight counts."""

    def __init__(self, input_shape: tuple[int, int, int]) -> None:
        self.tensors: dict[str, TensorSpec] = {"input": TensorSpec("input", tuple(input_shape))}
        self.ops: list[Op] = []

    def shape(self, t: str) -> tuple[int, ...]:
        return self.tensors[t].shape

    def _add(self, name: str, kind: str, inputs: tuple[str, ...], shape: tuple[int, ...], **kw: Any) -> str:
        """Append op `name` of `kind` with output shape `shape`; its MACs come from the op kind."""
        if name in self.tensors:
            raise WorkbenchError(f"duplicate tensor name {name!r} in the graph")
        out = tuple(int(s) for s in shape)
        macs = op_kind(kind).macs([self.shape(t) for t in inputs], out, kw.get("attrs", {}))
        self.tensors[name] = TensorSpec(name, out)
        self.ops.append(Op(name=name, kind=kind, inputs=inputs, output=name, macs=macs, **kw))
        return name

    def conv(self, name: str, x: str, out: int, k: int, stride: int, act: str, module: str,
             depthwise: bool = False) -> str:
        h, w, c = self.shape(x)
        pad = k // 2
        ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        if depthwise:
            out = c
        wshape = (c, k, k, 1) if depthwise else (out, k, k, c)
        attrs = {"kernel": (k, k), "stride": stride, "pad": pad, "act": act, "module": module}
        return self._add(name, "dwconv2d" if depthwise else "conv2d", (x,), (ho, wo, out), attrs=attrs,
                         weight_shape=wshape, weight_count=math.prod(wshape), bias_count=out)

    def linear(self, name: str, x: str, out: int, act: str, module: str) -> str:
        n, d = self.shape(x)
        return self._add(name, "linear", (x,), (n, out), attrs={"act": act, "module": module},
                         weight_shape=(out, d), weight_count=out * d, bias_count=out)

    def layernorm(self, name: str, x: str, module: str) -> str:
        n, d = self.shape(x)
        return self._add(name, "layernorm", (x,), (n, d), attrs={"module": module, "eps": 1e-5},
                         weight_shape=(d,), weight_count=d, bias_count=d)

    def add(self, name: str, a: str, b: str, act: str = "none") -> str:
        if self.shape(a) != self.shape(b):
            raise WorkbenchError(f"add {name!r} of shapes {self.shape(a)} and {self.shape(b)}")
        return self._add(name, "add", (a, b), self.shape(a), attrs={"act": act})

    def reshape(self, name: str, x: str, shape: tuple[int, ...]) -> str:
        if math.prod(shape) != self.tensors[x].numel:
            raise WorkbenchError(f"reshape {name!r} from {self.shape(x)} to {shape}")
        return self._add(name, "reshape", (x,), shape)

    def maxpool(self, name: str, x: str, k: int = 2) -> str:
        h, w, c = self.shape(x)
        return self._add(name, "maxpool", (x,), (h // k, w // k, c),
                         attrs={"kernel": (k, k), "stride": k, "pad": 0})

    def avgpool(self, name: str, x: str) -> str:
        h, w, c = self.shape(x)
        return self._add(name, "avgpool", (x,), (1, c), attrs={"kernel": (h, w), "global": True})

    def attention(self, name: str, q: str, k: str, v: str, heads: int, module: str | None = None) -> str:
        """S_h = Q_h K_hᵀ/√dh → softmax (in place) → S_h V_h, all heads in one op each."""
        nq, d = self.shape(q)
        nk, _ = self.shape(k)
        dh = d // heads
        s = self._add(f"{name}.qk", "matmul_qk", (q, k), (heads, nq, nk),
                      attrs={"heads": heads, "scale": 1.0 / math.sqrt(dh)})
        p = self._add(f"{name}.softmax", "softmax", (s,), (heads, nq, nk),
                      attrs={"axis": -1, "inplace": True})
        return self._add(f"{name}.av", "matmul_av", (p, v), (nq, d), attrs={"heads": heads})


def _mbv2(g: _Builder, name: str, module: str, x: str, out: int, expand: int, stride: int) -> str:
    """MobileNetV2 inverted residual: 1×1 expand (ReLU6) → 3×3 depthwise (ReLU6) → 1×1 project."""
    c = g.shape(x)[2]
    y = g.conv(f"{name}.expand", x, c * expand, 1, 1, "relu6", f"{module}.expand")
    y = g.conv(f"{name}.dw", y, 0, 3, stride, "relu6", f"{module}.dw", depthwise=True)
    y = g.conv(f"{name}.project", y, out, 1, 1, "none", f"{module}.project")
    if stride == 1 and out == c:
        y = g.add(f"{name}.add", x, y)
    return y


def _transformer_layer(g: _Builder, name: str, module: str, x: str, heads: int, mlp: int) -> str:
    """Pre-LN transformer layer on (N, D) tokens: x + proj(MHSA(LN x)); x + fc2(relu(fc1(LN x)))."""
    d = g.shape(x)[1]
    h = g.layernorm(f"{name}.ln1", x, f"{module}.ln1")
    q = g.linear(f"{name}.q", h, d, "none", f"{module}.q")
    k = g.linear(f"{name}.k", h, d, "none", f"{module}.k")
    v = g.linear(f"{name}.v", h, d, "none", f"{module}.v")
    a = g.attention(f"{name}.attn", q, k, v, heads)
    a = g.linear(f"{name}.proj", a, d, "none", f"{module}.proj")
    x = g.add(f"{name}.add1", x, a)
    h = g.layernorm(f"{name}.ln2", x, f"{module}.ln2")
    h = g.linear(f"{name}.fc1", h, mlp, "relu", f"{module}.fc1")
    h = g.linear(f"{name}.fc2", h, d, "none", f"{module}.fc2")
    return g.add(f"{name}.add2", x, h)


def _mobilevit(g: _Builder, name: str, module: str, x: str, blk: dict[str, Any]) -> str:
    """MobileViT-like block: conv3×3 → conv1×1 to D → tokens → L layers → conv1×1 back → +x → conv3×3.

    The fusion adds the block input before the 3×3 conv instead of MobileViT's channel concat: an
    HWC concat would need a copy on the MCU, the add does not (documented choice).
    """
    hh, ww, c = g.shape(x)
    y = g.conv(f"{name}.local", x, c, 3, 1, "relu6", f"{module}.local")
    y = g.conv(f"{name}.to_tokens", y, blk["dim"], 1, 1, "none", f"{module}.to_tokens")
    t = g.reshape(f"{name}.tokens", y, (hh * ww, blk["dim"]))  # (H, W, D) -> (N, D), a view
    for j in range(blk["layers"]):
        t = _transformer_layer(g, f"{name}.layer{j}", f"{module}.layers.{j}", t, blk["heads"], blk["mlp"])
    y = g.reshape(f"{name}.untokens", t, (hh, ww, blk["dim"]))  # (N, D) -> (H, W, D), a view
    y = g.conv(f"{name}.back", y, c, 1, 1, "relu6", f"{module}.back")
    y = g.add(f"{name}.add", x, y)
    return g.conv(f"{name}.fuse", y, c, 3, 1, "relu6", f"{module}.fuse")


def graph_of(arch: dict[str, Any], input_shape: tuple[int, int, int] | None = None) -> Graph:
    """The layer graph of candidate `arch` (see `core.tinyformer.space` for the dict's keys).

    `input_shape` defaults to `(r, r, 3)` with `r = arch["resolution"]`.
    """
    from core.tinyformer.arch import validate_arch

    validate_arch(arch)
    r = arch["resolution"]
    g = _Builder(input_shape or (r, r, 3))
    x = "input"
    for i, ds in enumerate(arch["downsample"]):
        module = f"downsample.{i}.{ds['kind']}"
        if ds["kind"] == "conv_pool":
            x = g.conv(f"ds{i}.conv", x, ds["out"], 3, 1, "relu6", f"{module}.conv")
            x = g.maxpool(f"ds{i}.pool", x)
        else:
            x = _mbv2(g, f"ds{i}", module, x, ds["out"], ds["expand"], stride=2)
    out = arch["mbv2"]["out"]
    for i, e in enumerate(arch["mbv2"]["expand"]):
        x = _mbv2(g, f"mb{i}", f"blocks.{i}", x, out, e, stride=1)
    for i, blk in enumerate(arch["vit"]):
        x = _mobilevit(g, f"vit{i}", f"vit.{i}", x, blk)
    x = g.conv("last", x, arch["last"], 1, 1, "relu6", "last")
    if arch["pool"] == "avg":
        x = g.avgpool("pool", x)
    else:  # attention pooling: softmax over tokens of a learned score, weighted sum of tokens
        hh, ww, c = g.shape(x)
        t = g.reshape("pool.tokens", x, (hh * ww, c))  # (H, W, C) -> (N, C)
        s = g.linear("pool.score", t, 1, "none", "pool.score")  # (N, 1)
        s = g.reshape("pool.scores", s, (1, 1, hh * ww))  # (N, 1) -> (1 head, 1 query, N keys)
        p = g._add("pool.softmax", "softmax", (s,), (1, 1, hh * ww), attrs={"axis": -1, "inplace": True})
        x = g._add("pool.av", "matmul_av", (p, t), (1, c), attrs={"heads": 1})
    x = g.linear("classifier", x, arch["classes"], "none", "classifier")
    return Graph(tensors=dict(g.tensors), ops=tuple(g.ops), input="input", output=x)
