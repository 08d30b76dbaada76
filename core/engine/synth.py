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

import numpy as np

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


KINDS = (
    "conv2d",
    "dwconv2d",
    "linear",
    "matmul_qk",
    "matmul_av",
    "softmax",
    "layernorm",
    "add",
    "maxpool",
    "avgpool",
)


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


def _selector(name: str, src: str, n: int, d: int, half: int, zp: int, out: str) -> tuple[Op, SynthQOp]:
    """linear that copies columns [half·d, half·d + d) of an (n, 2d) input exactly."""
    w = np.zeros((d, 2 * d), np.int8)
    w[np.arange(d), half * d + np.arange(d)] = 1
    op = Op(
        name=name,
        kind="linear",
        inputs=(src,),
        output=out,
        attrs={"act": "none"},
        weight_shape=(d, 2 * d),
        macs=n * d * 2 * d,
        weight_count=2 * d * d,
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


def single_op(
    kind: str,
    rng: np.random.Generator,
    *,
    h: int = 6,
    w: int = 6,
    cin: int = 8,
    cout: int = 8,
    k: int = 3,
    stride: int = 1,
    pad: int | None = None,
    n: int = 8,
    d: int = 8,
    heads: int = 2,
    act: str = "none",
    sparsity: float = 0.0,
    block: int = 1,
) -> SynthModel:
    """A program whose last op is `kind` with the given shape; weights pruned to `sparsity` in blocks."""
    if kind not in KINDS:
        raise unknown("op kind", kind, KINDS)
    pad = k // 2 if pad is None else pad
    tensors: dict[str, TensorSpec] = {}
    qops: list[SynthQOp] = []
    qin, qout = _qt(rng), _qt(rng)
    lo, hi = qmath.activation_range(act, qout.scale, qout.zero_point)

    def add_tensor(name: str, shape: tuple[int, ...]) -> str:
        tensors[name] = TensorSpec(name, tuple(shape))
        return name

    if kind in ("conv2d", "dwconv2d"):
        x = add_tensor("input", (h, w, cin))
        ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        dw = kind == "dwconv2d"
        c_out = cin if dw else cout
        wshape = (cin, k, k, 1) if dw else (cout, k, k, cin)
        wt = _weights(rng, wshape, sparsity, block, dw)
        fan = k * k * (1 if dw else cin)
        scale = rng.uniform(0.5, 2.0, c_out) / (60.0 * np.sqrt(fan))
        m, s = _mult(scale)
        op = Op(
            "layer",
            kind,
            (x,),
            add_tensor("layer", (ho, wo, c_out)),
            {"kernel": (k, k), "stride": stride, "pad": pad, "act": act},
            wshape,
            ho * wo * c_out * fan,
            int(np.prod(wshape)),
            c_out,
        )
        qops.append(
            SynthQOp(op, wt, rng.integers(-2000, 2000, c_out).astype(np.int32), m, s, (qin,), qout, lo, hi)
        )
    elif kind == "linear":
        x = add_tensor("input", (n, cin))
        wt = _weights(rng, (cout, cin), sparsity, block, False)
        m, s = _mult(1.0 / (60.0 * np.sqrt(cin)))
        op = Op(
            "layer",
            "linear",
            (x,),
            add_tensor("layer", (n, cout)),
            {"act": act},
            (cout, cin),
            n * cin * cout,
            cin * cout,
            cout,
        )
        qops.append(
            SynthQOp(op, wt, rng.integers(-2000, 2000, cout).astype(np.int32), m, s, (qin,), qout, lo, hi)
        )
    elif kind in ("matmul_qk", "matmul_av", "add"):
        width = n * heads if kind == "matmul_av" else d
        x = add_tensor("input", (n, 2 * width))
        a_name, b_name = add_tensor("a", (n, width)), add_tensor("b", (n, width))
        for half, name in ((0, a_name), (1, b_name)):
            op, q = _selector(f"sel{half}", x, n, width, half, qin.zero_point, name)
            qops.append(q)
        qa = QT(0.05, qin.zero_point)
        if kind == "matmul_qk":
            m, s = _mult(1.0 / (30.0 * np.sqrt(d // heads)))
            op = Op(
                "layer",
                kind,
                (a_name, b_name),
                add_tensor("layer", (heads, n, n)),
                {"heads": heads},
                macs=n * n * d,
            )
        elif kind == "matmul_av":
            p = add_tensor("p", (heads, n, n))  # a view of the first half: (n, heads·n) -> (heads, n, n)
            qops.append(SynthQOp(Op("p", "reshape", (a_name,), p)))
            a_name = p
            m, s = _mult(1.0 / (30.0 * np.sqrt(n)))
            op = Op(
                "layer",
                kind,
                (p, b_name),
                add_tensor("layer", (n, width)),
                {"heads": heads},
                macs=n * n * width,
            )
        else:
            op = Op("layer", "add", (a_name, b_name), add_tensor("layer", (n, width)), {"act": act})
            qb = QT(float(rng.uniform(0.02, 0.1)), qin.zero_point)
            par = qmath.add_multipliers(qa.scale, qb.scale, qout.scale)
            mult = np.array([par["a_mult"], par["b_mult"], par["out_mult"]], np.int32)
            shift = np.array([par["a_shift"], par["b_shift"], par["out_shift"]], np.int32)
            qops.append(
                SynthQOp(
                    op, None, None, mult, shift, (qa, qb), qout, lo, hi, {"left_shift": qmath.ADD_LEFT_SHIFT}
                )
            )
            return SynthModel(_graph(tensors, qops, x), tuple(qops))
        qops.append(SynthQOp(op, None, None, m, s, (qa, qa), qout, lo, hi))
    elif kind == "softmax":
        x = add_tensor("input", (heads, n, n))
        op = Op("layer", "softmax", (x,), add_tensor("layer", (heads, n, n)), {"axis": -1, "inplace": True})
        qops.append(
            SynthQOp(op, in_q=(qin,), out_q=QT(1 / 256, -128), extra={"lut": qmath.softmax_lut(qin.scale)})
        )
    elif kind == "layernorm":
        x = add_tensor("input", (n, d))
        op = Op("layer", "layernorm", (x,), add_tensor("layer", (n, d)), {}, (d,), 0, d, d)
        gamma = rng.integers(-3000, 3000, d).astype(np.int32)
        beta = rng.integers(-20000, 20000, d).astype(np.int32)
        m, s = _mult(2.0**-10 / 40.0)
        qops.append(SynthQOp(op, gamma, beta, m, s, (qin,), qout, lo, hi))
    else:  # pooling
        x = add_tensor("input", (h, w, cin))
        if kind == "maxpool":
            op = Op(
                "layer",
                "maxpool",
                (x,),
                add_tensor("layer", (h // 2, w // 2, cin)),
                {"kernel": (2, 2), "stride": 2, "pad": 0},
            )
        else:
            op = Op(
                "layer", "avgpool", (x,), add_tensor("layer", (1, cin)), {"kernel": (h, w), "global": True}
            )
        qops.append(SynthQOp(op, in_q=(qin,), out_q=qin))
    return SynthModel(_graph(tensors, qops, "input"), tuple(qops))


def _graph(tensors: dict[str, TensorSpec], qops: list[SynthQOp], inp: str) -> Graph:
    return Graph(tensors=dict(tensors), ops=tuple(q.op for q in qops), input=inp, output=qops[-1].op.output)


def reference_op(qop: QOp, inputs: list[np.ndarray]) -> np.ndarray:
    """The integer reference (`quant_ops.run_qop`, i.e. intref) of `qop` on int8 `inputs`."""
    from core.tinyformer.quant_ops import run_qop

    return run_qop(qop, inputs)
