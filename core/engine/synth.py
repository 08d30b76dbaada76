"""Random small quantized programs for kernel tests and the kernel benchmark, and the per-op reference.

`single_op(kind, shape_args, rng)` builds a `SynthModel` (a `graph` + `qops` with the fields of
`core.tinyformer.quant.QOp`) holding one op under test with random int8 weights and valid random
quantization parameters (multipliers from `qmath.quantize_multiplier` of a scale that keeps outputs
in range). Ops with two inputs get them from one `(N, 2·D)` graph input through two exact selector
layers (`linear` with an identity block and multiplier 1.0, so they copy their half bit for bit).

The reference the C kernels are compared with is `core.tinyformer.quant_ops.run_qop` (intref).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.engine.lowering import SUPPORTED
from core.errors import unknown
from core.tinyformer import qmath
from core.tinyformer.graph import Graph, Op, TensorSpec
from core.tinyformer.quant import QOp, QTensor

QT = QTensor
_NONE = np.zeros(0, np.int32)
_UNIT = QTensor(1.0, 0)


def SynthQOp(
    op: Op,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,  # noqa: N802
    multiplier: np.ndarray = _NONE,
    shift: np.ndarray = _NONE,
    in_q: tuple[QTensor, ...] = (),
    out_q: QTensor = _UNIT,
    act_min: int = -128,
    act_max: int = 127,
    extra: dict | None = None,
) -> QOp:
    """A `quant.QOp` with the fields the engine and `run_qop` read (w_scale is not needed)."""
    return QOp(
        op=op,
        weight=weight,
        bias=bias,
        w_scale=None,
        multiplier=np.atleast_1d(multiplier),
        shift=np.atleast_1d(shift),
        in_q=in_q,
        out_q=out_q,
        act_min=act_min,
        act_max=act_max,
        extra=extra or {},
    )


@dataclass
class SynthModel:
    """A graph and its quantized ops (the two fields of quant.QuantizedModel the engine reads)."""

    graph: Graph
    qops: tuple[QOp, ...]


#: op kinds a single-op program can be synthesised for (every engine op but the zero-cost reshape)
KINDS = tuple(k for k in SUPPORTED if k != "reshape")


def _qt(rng: np.random.Generator) -> QT:
    return QT(float(rng.uniform(0.02, 0.1)), int(rng.integers(-20, 21)))


def _mult(real: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return qmath.quantize_multipliers(np.atleast_1d(np.asarray(real, np.float64)))


def _weights(
    rng: np.random.Generator, shape: tuple[int, ...], sparsity: float, block: int, depthwise: bool
) -> np.ndarray:
    w = rng.integers(-127, 128, size=shape).astype(np.int8)
    if sparsity > 0:
        rows = w.reshape(shape[0], -1, block)  # (out, blocks per row, block)
        keep = rng.random(rows.shape[:2]) >= sparsity
        w = (rows * keep[..., None]).astype(np.int8).reshape(shape)
    return w


def _selector(name: str, src: str, n: int, d: int, half: int, zp: int, out: str, parts: int = 2
              ) -> tuple[Op, SynthQOp]:
    """linear that copies columns [half·d, half·d + d) of an (n, parts·d) input exactly."""
    w = np.zeros((d, parts * d), np.int8)
    w[np.arange(d), half * d + np.arange(d)] = 1
    op = Op(
        name=name,
        kind="linear",
        inputs=(src,),
        output=out,
        attrs={"act": "none"},
        weight_shape=(d, parts * d),
        macs=n * d * parts * d,
        weight_count=parts * d * d,
        bias_count=d,
    )
    m, s = qmath.quantize_multiplier(1.0)
    return op, SynthQOp(
        op,
        w,
        np.zeros(d, np.int32),
        np.array([m], np.int32),
        np.array([s], np.int32),
        (QT(0.05, zp),),
        QT(0.05, zp),
    )


@dataclass(frozen=True)
class OpShape:
    """Shape and activation of the op under test (the keyword arguments of `single_op`)."""

    h: int = 6
    w: int = 6
    cin: int = 8
    cout: int = 8
    k: int = 3
    stride: int = 1
    pad: int | None = None
    n: int = 8
    d: int = 8
    heads: int = 2
    act: str = "none"
    sparsity: float = 0.0
    block: int = 1

    @property
    def padding(self) -> int:
        return self.k // 2 if self.pad is None else self.pad


class _Builder:
    """Tensors and quantized ops of one synthetic program, plus the random quantization of its ends."""

    def __init__(self, rng: np.random.Generator, shape: OpShape) -> None:
        self.rng, self.s = rng, shape
        self.tensors: dict[str, TensorSpec] = {}
        self.qops: list[QOp] = []
        self.qin, self.qout = _qt(rng), _qt(rng)
        self.lo, self.hi = qmath.activation_range(shape.act, self.qout.scale, self.qout.zero_point)

    def tensor(self, name: str, shape: tuple[int, ...]) -> str:
        self.tensors[name] = TensorSpec(name, tuple(shape))
        return name

    def model(self) -> SynthModel:
        graph = Graph(tensors=dict(self.tensors), ops=tuple(q.op for q in self.qops), input="input",
                      output=self.qops[-1].op.output)
        return SynthModel(graph, tuple(self.qops))


def _conv(b: _Builder, kind: str) -> None:
    s, rng = b.s, b.rng
    x = b.tensor("input", (s.h, s.w, s.cin))
    pad = s.padding
    ho, wo = (s.h + 2 * pad - s.k) // s.stride + 1, (s.w + 2 * pad - s.k) // s.stride + 1
    dw = kind == "dwconv2d"
    c_out = s.cin if dw else s.cout
    wshape = (s.cin, s.k, s.k, 1) if dw else (s.cout, s.k, s.k, s.cin)
    wt = _weights(rng, wshape, s.sparsity, s.block, dw)
    fan = s.k * s.k * (1 if dw else s.cin)
    m, sh = _mult(rng.uniform(0.5, 2.0, c_out) / (60.0 * np.sqrt(fan)))
    attrs = {"kernel": (s.k, s.k), "stride": s.stride, "pad": pad, "act": s.act}
    op = Op("layer", kind, (x,), b.tensor("layer", (ho, wo, c_out)), attrs, wshape, ho * wo * c_out * fan,
            int(np.prod(wshape)), c_out)
    bias = rng.integers(-2000, 2000, c_out).astype(np.int32)
    b.qops.append(SynthQOp(op, wt, bias, m, sh, (b.qin,), b.qout, b.lo, b.hi))


def _linear(b: _Builder, kind: str) -> None:
    s, rng = b.s, b.rng
    x = b.tensor("input", (s.n, s.cin))
    wt = _weights(rng, (s.cout, s.cin), s.sparsity, s.block, False)
    m, sh = _mult(1.0 / (60.0 * np.sqrt(s.cin)))
    op = Op("layer", "linear", (x,), b.tensor("layer", (s.n, s.cout)), {"act": s.act}, (s.cout, s.cin),
            s.n * s.cin * s.cout, s.cin * s.cout, s.cout)
    bias = rng.integers(-2000, 2000, s.cout).astype(np.int32)
    b.qops.append(SynthQOp(op, wt, bias, m, sh, (b.qin,), b.qout, b.lo, b.hi))


def _two_inputs(b: _Builder, kind: str) -> None:
    """matmul_qk, matmul_av, add: both operands selected exactly from one (N, 2·width) input."""
    s, rng = b.s, b.rng
    n, heads = s.n, s.heads
    width = n * heads if kind == "matmul_av" else s.d
    x = b.tensor("input", (n, 2 * width))
    a_name, b_name = b.tensor("a", (n, width)), b.tensor("b", (n, width))
    for half, name in ((0, a_name), (1, b_name)):
        b.qops.append(_selector(f"sel{half}", x, n, width, half, b.qin.zero_point, name)[1])
    qa = QT(0.05, b.qin.zero_point)
    if kind == "add":
        op = Op("layer", "add", (a_name, b_name), b.tensor("layer", (n, width)), {"act": s.act})
        qb = QT(float(rng.uniform(0.02, 0.1)), b.qin.zero_point)
        par = qmath.add_multipliers(qa.scale, qb.scale, b.qout.scale)
        mult = np.array([par["a_mult"], par["b_mult"], par["out_mult"]], np.int32)
        shift = np.array([par["a_shift"], par["b_shift"], par["out_shift"]], np.int32)
        b.qops.append(SynthQOp(op, None, None, mult, shift, (qa, qb), b.qout, b.lo, b.hi,
                               {"left_shift": qmath.ADD_LEFT_SHIFT}))
        return
    if kind == "matmul_qk":
        m, sh = _mult(1.0 / (30.0 * np.sqrt(s.d // heads)))
        op = Op("layer", kind, (a_name, b_name), b.tensor("layer", (heads, n, n)), {"heads": heads},
                macs=n * n * s.d)
    else:
        p = b.tensor("p", (heads, n, n))  # a view of the first half: (n, heads·n) -> (heads, n, n)
        b.qops.append(SynthQOp(Op("p", "reshape", (a_name,), p)))
        m, sh = _mult(1.0 / (30.0 * np.sqrt(n)))
        out = b.tensor("layer", (n, width))
        op = Op("layer", kind, (p, b_name), out, {"heads": heads}, macs=n * n * width)
    b.qops.append(SynthQOp(op, None, None, m, sh, (qa, qa), b.qout, b.lo, b.hi))


def _attention(b: _Builder, kind: str) -> None:
    """Row-tiled attention over q, k, v selected exactly from one (N, 3·D) input (N queries and keys)."""
    s, rng = b.s, b.rng
    n, d, heads = s.n, s.d, s.heads
    x = b.tensor("input", (n, 3 * d))
    names = [b.tensor(t, (n, d)) for t in ("q", "k", "v")]
    for part, name in enumerate(names):
        b.qops.append(_selector(f"sel{part}", x, n, d, part, b.qin.zero_point, name, parts=3)[1])
    qa = QT(0.05, b.qin.zero_point)
    attrs = {"heads": heads, "scale": 1.0 / np.sqrt(d // heads)}
    op = Op("layer", kind, tuple(names), b.tensor("layer", (n, d)), attrs, macs=2 * n * n * d)
    s_q = QT(float(rng.uniform(0.05, 0.2)), int(rng.integers(-20, 21)))
    qk = SynthQOp(op, multiplier=_mult(qa.scale * qa.scale * attrs["scale"] / s_q.scale)[0],
                  shift=_mult(qa.scale * qa.scale * attrs["scale"] / s_q.scale)[1], in_q=(qa, qa), out_q=s_q)
    sm = SynthQOp(op, extra={"lut": qmath.softmax_lut(s_q.scale)})
    m, sh = _mult(1.0 / (30.0 * np.sqrt(n)))
    av = SynthQOp(op, multiplier=m, shift=sh, in_q=(QT(1 / 256, -128), qa), out_q=b.qout, act_min=b.lo,
                  act_max=b.hi)
    from core.tinyformer.ops.attention import fuse_qops

    b.qops.append(fuse_qops(op, qk, sm, av))


def _elementwise(b: _Builder, kind: str) -> None:
    """softmax, layernorm, maxpool, avgpool."""
    s, rng = b.s, b.rng
    if kind == "softmax":
        x = b.tensor("input", (s.heads, s.n, s.n))
        out = b.tensor("layer", (s.heads, s.n, s.n))
        op = Op("layer", "softmax", (x,), out, {"axis": -1, "inplace": True})
        b.qops.append(SynthQOp(op, in_q=(b.qin,), out_q=QT(1 / 256, -128),
                               extra={"lut": qmath.softmax_lut(b.qin.scale)}))
    elif kind == "layernorm":
        x = b.tensor("input", (s.n, s.d))
        op = Op("layer", "layernorm", (x,), b.tensor("layer", (s.n, s.d)), {}, (s.d,), 0, s.d, s.d)
        gamma = rng.integers(-3000, 3000, s.d).astype(np.int32)
        beta = rng.integers(-20000, 20000, s.d).astype(np.int32)
        m, sh = _mult(2.0**-10 / 40.0)
        b.qops.append(SynthQOp(op, gamma, beta, m, sh, (b.qin,), b.qout, b.lo, b.hi))
    elif kind == "maxpool":
        x = b.tensor("input", (s.h, s.w, s.cin))
        op = Op("layer", "maxpool", (x,), b.tensor("layer", (s.h // 2, s.w // 2, s.cin)),
                {"kernel": (2, 2), "stride": 2, "pad": 0})
        b.qops.append(SynthQOp(op, in_q=(b.qin,), out_q=b.qin))
    else:
        x = b.tensor("input", (s.h, s.w, s.cin))
        out = b.tensor("layer", (1, s.cin))
        op = Op("layer", "avgpool", (x,), out, {"kernel": (s.h, s.w), "global": True})
        b.qops.append(SynthQOp(op, in_q=(b.qin,), out_q=b.qin))


_BUILD = {"conv2d": _conv, "dwconv2d": _conv, "linear": _linear, "matmul_qk": _two_inputs,
          "matmul_av": _two_inputs, "add": _two_inputs, "softmax": _elementwise, "layernorm": _elementwise,
          "maxpool": _elementwise, "avgpool": _elementwise, "attention": _attention}


def single_op(kind: str, rng: np.random.Generator, **shape: Any) -> SynthModel:
    """A program whose last op is `kind`; `shape` holds `OpShape` fields (weights pruned to `sparsity`
    in blocks of `block`)."""
    if kind not in KINDS:
        raise unknown("op kind", kind, KINDS)
    b = _Builder(rng, OpShape(**shape))
    _BUILD[kind](b, kind)
    return b.model()


def reference_op(qop: QOp, inputs: list[np.ndarray]) -> np.ndarray:
    """The integer reference (`quant_ops.run_qop`, i.e. intref) of `qop` on int8 `inputs`."""
    from core.tinyformer.quant_ops import run_qop

    return run_qop(qop, inputs)
