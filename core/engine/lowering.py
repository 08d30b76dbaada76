"""Lower each quantized op to one kernel call: the C arguments, the constant arrays, the scratch.

`lower_op(qop, graph, fmt)` returns a `Lowered`: the op's constants (weights as int8 or as the
blockwise run-length bytes, biases, multipliers, LUTs) and a `call(addr)` that renders the C call
once the memory plan has given every tensor an address. Parameters follow the contract of
`core.tinyformer.intref` (whose docstrings the C kernels port bit for bit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.engine.kernels import KernelKey
from core.errors import WorkbenchError
from core.tinyformer.ops import OPS, op_kind

#: op kinds the engine can run: every kind of the registry (each owns its lowering)
SUPPORTED = tuple(OPS)


@dataclass(frozen=True)
class WeightFormat:
    """How one weighted layer is stored: dense int8, or sparse with block size `block`."""

    sparse: bool = False
    block: int = 0

    def __post_init__(self) -> None:
        if self.sparse and self.block not in (1, 2, 3, 4):
            raise WorkbenchError(f"sparse block size {self.block} must be 1, 2, 3 or 4")


@dataclass
class Lowered:
    """One op ready for code generation."""

    name: str
    kind: str
    key: KernelKey | None
    arrays: list[tuple[str, str, np.ndarray]] = field(default_factory=list)  # (c name, c type, values)
    scratch: int = 0
    call: Callable[[Callable[[str], str]], str] = lambda addr: ""
    weight_bytes: int = 0
    fmt: WeightFormat = WeightFormat()
    #: max |int32 accumulator| the kernel can reach (0: the op requantizes with the exact path only)
    acc_bound: int = 0
    #: "engine" (the SparseEngine's kernels) or "cmsis-nn" (CMSIS-NN through kernels/se_cmsis.c)
    backend: str = "engine"


def _acc_bound(w: np.ndarray, bias: np.ndarray, x_range: int) -> int:
    """max over output channels of |bias| + x_range·Σ|w| (x_range: largest |x − zp| the kernel sees)."""
    rows = np.abs(np.asarray(w, np.int64).reshape(w.shape[0], -1)).sum(axis=1)
    return int(np.max(np.abs(np.asarray(bias, np.int64)) + x_range * rows))


def _c_ident(name: str) -> str:
    return "L_" + "".join(ch if ch.isalnum() else "_" for ch in name)


def _zp(q: Any) -> int:
    return int(q.zero_point)


def _extra(qop: Any, key: str) -> Any:
    extra = getattr(qop, "extra", None) or {}
    if key not in extra:
        raise WorkbenchError(
            f"op {qop.op.name!r} ({qop.op.kind}) lacks the quantization parameter "
            f"{key!r}; found: {', '.join(sorted(extra)) or 'none'}"
        )
    return extra[key]


def _vec(values: Any, n: int, dtype: type = np.int32) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values)).astype(np.int64)
    return arr.astype(dtype) if arr.size == n else np.full(n, int(arr.ravel()[0]), dtype)


def lower_op(qop: Any, graph: Any, fmt: WeightFormat, backend: str = "engine") -> Lowered:
    """The kernel call for `qop` (a `core.tinyformer.quant.QOp`); unsupported kinds name the layer.

    backend "cmsis-nn" runs the op on CMSIS-NN (`core.engine.cmsis`; dense weights only). The call
    contains the token `SE_LAYER`, which code generation replaces with the layer's index.
    """
    op = qop.op
    if op.kind not in SUPPORTED:
        raise WorkbenchError(
            f"layer {op.name!r} has op kind {op.kind!r}, which the SparseEngine does not "
            f"support; supported: {', '.join(SUPPORTED)}"
        )
    shapes = [graph.tensors[t].shape for t in op.inputs]
    out_shape = graph.tensors[op.output].shape
    kind = op_kind(op.kind)
    if backend == "cmsis-nn":
        if fmt.sparse:
            raise WorkbenchError(
                f"layer {op.name!r}: CMSIS-NN runs dense weights only, got sparse b{fmt.block}")
        low = kind.lower_cmsis(qop, shapes, out_shape)
        if low is None:
            from core.engine.cmsis import SEMANTICS

            why = SEMANTICS.get(op.kind, "CMSIS-NN has no matching kernel")
            raise WorkbenchError(f"layer {op.name!r} ({op.kind}) cannot run on CMSIS-NN: {why}; "
                                 f"run it on the engine's kernel instead")
        low.backend = "cmsis-nn"
    elif backend == "engine":
        low = kind.lower(qop, shapes, out_shape, fmt)
    else:
        raise WorkbenchError(f"backend {backend!r} is not known; use 'engine' or 'cmsis-nn'")
    low.name, low.kind = op.name, op.kind
    return low


def pack_dense(w4: np.ndarray) -> np.ndarray:
    """(Cout, kh, kw, Cin) int8 -> the dense conv kernel's layout (see templates/conv2d.tmpl.c).

    Rows are zero-padded to K4 = 4·⌈K/4⌉ and the channel count to even; then per channel pair and
    per group of 4 taps the two channels' 4 weights follow each other.
    """
    cout = w4.shape[0]
    rows = w4.reshape(cout, -1)  # (Cout, K)
    k4 = -(-rows.shape[1] // 4) * 4
    padded = np.zeros((cout + cout % 2, k4), np.int8)
    padded[:cout, : rows.shape[1]] = rows
    pairs = padded.reshape(-1, 2, k4 // 4, 4)  # (Cout/2, 2, K4/4, 4)
    return pairs.transpose(0, 2, 1, 3).ravel()  # (Cout/2, K4/4, 2, 4)


def lower_conv_like(qop: Any, shapes: list, out_shape: tuple, fmt: WeightFormat) -> Lowered:
    """conv2d and linear (a 1×1 conv over tokens: H = 1, W = N)."""
    from core.tinyformer import sparse

    op, w = qop.op, np.asarray(qop.weight, np.int8)
    if op.kind == "linear":
        (n, cin), (_, cout) = shapes[0], out_shape
        h, wd, ho, wo, kh, kw, stride, pad = 1, n, 1, n, 1, 1, 1, 0
        per_channel = int(np.size(qop.multiplier) == cout and cout > 1)
    else:
        (h, wd, cin), (ho, wo, cout) = shapes[0], out_shape
        kh, kw = op.attrs["kernel"]
        stride, pad = int(op.attrs.get("stride", 1)), int(op.attrs.get("pad", 0))
        per_channel = 1
    nq = cout if per_channel else 1
    ident = _c_ident(op.name)
    bias = np.zeros(cout, np.int64) if qop.bias is None else np.asarray(qop.bias, np.int64)
    fold = kh == 1 and kw == 1 and stride == 1 and pad == 0
    if fmt.sparse and fold:  # the sparse 1×1 kernel takes the input offset folded into the bias
        bias = bias - _zp(qop.in_q[0]) * w.reshape(cout, -1).astype(np.int64).sum(axis=1)
        if bias.min() < -(2**31) or bias.max() >= 2**31:
            raise WorkbenchError(f"layer {op.name!r}: the folded bias overflows int32")
    arrays = [
        (f"{ident}_bias", "int32_t", bias.astype(np.int32)),
        (f"{ident}_mult", "int32_t", _vec(qop.multiplier, nq)),
        (f"{ident}_shift", "int32_t", _vec(qop.shift, nq)),
    ]
    w4 = w.reshape(cout, kh, kw, cin)  # linear (out, in) -> (out, 1, 1, in)
    if fmt.sparse:
        enc = np.frombuffer(sparse.encode(w4, fmt.block), np.uint8)
        arrays.append((f"{ident}_w", "uint8_t", enc))
        key = KernelKey("sparse_conv2d", kh, kw, stride, pad, fmt.block)
    else:
        arrays.append((f"{ident}_w", "int8_t", pack_dense(w4)))
        key = KernelKey("conv2d", kh, kw, stride, pad)
    scratch = op_kind(op.kind).scratch(op, shapes, out_shape, fmt.sparse)
    scratch_t = "int32_t" if fmt.sparse else "int16_t"
    zps = (_zp(qop.in_q[0]), _zp(qop.out_q), int(qop.act_min), int(qop.act_max))

    def call(addr: Callable[[str], str]) -> str:
        return (
            f"{key.name}({addr(op.inputs[0])}, {h}, {wd}, {cin}, {ident}_w, {ident}_bias, {ident}_mult, "
            f"{ident}_shift, {per_channel}, {addr(op.output)}, {ho}, {wo}, {cout}, {zps[0]}, {zps[1]}, "
            f"{zps[2]}, {zps[3]}, ({scratch_t} *){addr(op.name + '.scratch')});"
        )

    bound = _acc_bound(w4, bias, 128 if (fmt.sparse and fold) else 255)
    return Lowered("", "", key, arrays, scratch, call, int(arrays[-1][2].size) + 12 * cout, fmt, bound)


def lower_dwconv(qop: Any, shapes: list, out_shape: tuple, fmt: WeightFormat) -> Lowered:
    from core.tinyformer import sparse

    op, w = qop.op, np.asarray(qop.weight, np.int8)
    (h, wd, c), (ho, wo, _) = shapes[0], out_shape
    kh, kw = op.attrs["kernel"]
    stride, pad = int(op.attrs.get("stride", 1)), int(op.attrs.get("pad", 0))
    ident = _c_ident(op.name)
    bias = np.zeros(c, np.int32) if qop.bias is None else np.asarray(qop.bias, np.int32)
    arrays = [
        (f"{ident}_bias", "int32_t", bias),
        (f"{ident}_mult", "int32_t", _vec(qop.multiplier, c)),
        (f"{ident}_shift", "int32_t", _vec(qop.shift, c)),
    ]
    if fmt.sparse:
        arrays.append((f"{ident}_w", "uint8_t", np.frombuffer(sparse.encode(w, fmt.block), np.uint8)))
        key = KernelKey("sparse_dwconv2d", kh, kw, stride, pad, fmt.block)
    else:
        tap_major = w[..., 0].reshape(c, kh * kw).T  # (C, kh, kw, 1) -> (kh·kw, C)
        arrays.append((f"{ident}_w", "int8_t", tap_major.ravel()))
        key = KernelKey("dwconv2d", kh, kw, stride, pad)
    zps = f"{_zp(qop.in_q[0])}, {_zp(qop.out_q)}, {int(qop.act_min)}, {int(qop.act_max)}"

    def call(addr: Callable[[str], str]) -> str:
        tail = f", (int32_t *){addr(op.name + '.scratch')}" if fmt.sparse else ""
        return (
            f"{key.name}({addr(op.inputs[0])}, {h}, {wd}, {c}, {ident}_w, {ident}_bias, {ident}_mult, "
            f"{ident}_shift, {addr(op.output)}, {ho}, {wo}, {zps}{tail});"
        )

    scratch = op_kind(op.kind).scratch(op, shapes, out_shape, fmt.sparse)
    weight_bytes = int(arrays[-1][2].size) + 12 * c
    return Lowered("", "", key, arrays, scratch, call, weight_bytes, fmt, _acc_bound(w, bias, 255))


def _requant_args(qop: Any) -> str:
    return (
        f"{int(np.ravel(qop.multiplier)[0])}, {int(np.ravel(qop.shift)[0])}, {_zp(qop.out_q)}, "
        f"{int(qop.act_min)}, {int(qop.act_max)}"
    )


def lower_matmul_qk(qop: Any, shapes: list, out_shape: tuple, fmt: WeightFormat) -> Lowered:
    op = qop.op
    (nq, d), (nk, _) = shapes
    heads = int(op.attrs["heads"])
    scratch = op_kind(op.kind).scratch(op, shapes, out_shape)

    def call(addr: Callable[[str], str]) -> str:
        return (
            f"se_matmul_qk({addr(op.inputs[0])}, {addr(op.inputs[1])}, {addr(op.output)}, {nq}, {nk}, {d}, "
            f"{heads}, {_zp(qop.in_q[0])}, {_zp(qop.in_q[1])}, {_requant_args(qop)}, "
            f"(int16_t *){addr(op.name + '.scratch')});"
        )

    return Lowered("", "", None, [], scratch, call, acc_bound=(d // heads) * 255 * 255)


def lower_matmul_av(qop: Any, shapes: list, out_shape: tuple, fmt: WeightFormat) -> Lowered:
    op = qop.op
    (heads, nq, nk), (_, d) = shapes
    scratch = op_kind(op.kind).scratch(op, shapes, out_shape)

    def call(addr: Callable[[str], str]) -> str:
        return (
            f"se_matmul_av({addr(op.inputs[0])}, {addr(op.inputs[1])}, {addr(op.output)}, {heads}, {nq}, "
            f"{nk}, {d}, {_zp(qop.in_q[0])}, {_zp(qop.in_q[1])}, {_requant_args(qop)}, "
            f"(int16_t *){addr(op.name + '.scratch')});"
        )

    return Lowered("", "", None, [], scratch, call, acc_bound=nk * 255 * 255)


def lower_attention(qop: Any, shapes: list, out_shape: tuple, fmt: WeightFormat) -> Lowered:
    """Row-tiled attention (`se_attention`): the QOp of `core.tinyformer.ops.attention.fuse_qops`."""
    op = qop.op
    (nq, d), (nk, _), _ = shapes
    heads = int(op.attrs["heads"])
    ident = _c_ident(op.name)
    x = qop.extra
    zq, zk, zv = (_zp(t) for t in qop.in_q)
    m, s = np.ravel(qop.multiplier), np.ravel(qop.shift)
    p = [zq, zk, int(m[0]), int(s[0]), int(x["s_zp"]), int(x["s_min"]), int(x["s_max"]), int(x["p_zp"]), zv,
         int(m[1]), int(s[1]), _zp(qop.out_q), int(qop.act_min), int(qop.act_max)]
    arrays = [(f"{ident}_p", "int32_t", np.asarray(p, np.int32)),
              (f"{ident}_lut", "int32_t", np.asarray(_extra(qop, "lut"), np.int32))]

    def call(addr: Callable[[str], str]) -> str:
        q, k, v = (addr(t) for t in op.inputs)
        return (f"se_attention({q}, {k}, {v}, {addr(op.output)}, {nq}, {nk}, {d}, {heads}, {ident}_p, "
                f"{ident}_lut, (int8_t *){addr(op.name + '.scratch')});")

    scratch = op_kind(op.kind).scratch(op, shapes, out_shape)
    return Lowered("", "", None, arrays, scratch, call, acc_bound=max(d // heads, nk) * 255 * 255)


def lower_softmax(qop: Any, shapes: list, out_shape: tuple, fmt: WeightFormat) -> Lowered:
    op = qop.op
    shape = shapes[0]
    rows, length = int(np.prod(shape[:-1])), int(shape[-1])
    ident = _c_ident(op.name)
    lut = np.asarray(_extra(qop, "lut"), np.int32)

    def call(addr: Callable[[str], str]) -> str:
        return (
            f"se_softmax({addr(op.inputs[0])}, {addr(op.output)}, {rows}, {length}, {ident}_lut, "
            f"(int32_t *){addr(op.name + '.scratch')});"
        )

    scratch = op_kind(op.kind).scratch(op, shapes, out_shape)
    return Lowered("", "", None, [(f"{ident}_lut", "int32_t", lut)], scratch, call)


def lower_layernorm(qop: Any, shapes: list, out_shape: tuple, fmt: WeightFormat) -> Lowered:
    op = qop.op
    n, d = shapes[0]
    ident = _c_ident(op.name)
    gamma = np.asarray(qop.weight if qop.weight is not None else _extra(qop, "gamma"), np.int32)
    beta = np.asarray(qop.bias if qop.bias is not None else _extra(qop, "beta"), np.int32)

    def call(addr: Callable[[str], str]) -> str:
        return (
            f"se_layernorm({addr(op.inputs[0])}, {addr(op.output)}, {n}, {d}, {ident}_gamma, {ident}_beta, "
            f"{_requant_args(qop)});"
        )

    return Lowered(
        "",
        "",
        None,
        [(f"{ident}_gamma", "int32_t", gamma.ravel()), (f"{ident}_beta", "int32_t", beta.ravel())],
        0,
        call,
        8 * d,
    )


def lower_add(qop: Any, shapes: list, out_shape: tuple, fmt: WeightFormat) -> Lowered:
    """quant.QOp convention: multiplier/shift = [input a, input b, output] (TFLite ADD, left shift 20)."""
    op = qop.op
    ident = _c_ident(op.name)
    m, s = np.ravel(qop.multiplier), np.ravel(qop.shift)
    if m.size != 3 or s.size != 3:
        raise WorkbenchError(
            f"layer {op.name!r} (add) needs 3 multipliers and shifts [a, b, out], got {m.size}"
        )
    p = [int(m[0]), int(s[0]), int(m[1]), int(s[1]), int(m[2]), int(s[2])]
    n = int(np.prod(out_shape))

    def call(addr: Callable[[str], str]) -> str:
        return (
            f"se_add({addr(op.inputs[0])}, {addr(op.inputs[1])}, {addr(op.output)}, {n}, "
            f"{_zp(qop.in_q[0])}, {_zp(qop.in_q[1])}, {ident}_p, {_zp(qop.out_q)}, {int(qop.act_min)}, "
            f"{int(qop.act_max)});"
        )

    return Lowered("", "", None, [(f"{ident}_p", "int32_t", np.asarray(p, np.int32))], 0, call)


def lower_maxpool(qop: Any, shapes: list, out_shape: tuple, fmt: WeightFormat) -> Lowered:
    op = qop.op
    (h, w, c), (ho, wo, _) = shapes[0], out_shape
    k = int(op.attrs["kernel"][0])
    s = int(op.attrs.get("stride", k))
    if int(op.attrs.get("pad", 0)) or op.attrs["kernel"][0] != op.attrs["kernel"][1]:
        raise WorkbenchError(
            f"layer {op.name!r}: maxpool supports square kernels without padding, got "
            f"kernel {op.attrs['kernel']} pad {op.attrs.get('pad')}"
        )

    def call(addr: Callable[[str], str]) -> str:
        return (
            f"se_maxpool({addr(op.inputs[0])}, {addr(op.output)}, {h}, {w}, {c}, {k}, {s}, {ho}, {wo}, "
            f"{int(qop.act_min)}, {int(qop.act_max)});"
        )

    return Lowered("", "", None, [], 0, call)


def lower_avgpool(qop: Any, shapes: list, out_shape: tuple, fmt: WeightFormat) -> Lowered:
    op = qop.op
    h, w, c = shapes[0]
    if tuple(op.attrs["kernel"]) != (h, w):
        raise WorkbenchError(
            f"layer {op.name!r}: only global average pooling is supported, got kernel "
            f"{op.attrs['kernel']} on a {h}x{w} map"
        )

    def call(addr: Callable[[str], str]) -> str:
        return (
            f"se_avgpool_global({addr(op.inputs[0])}, {addr(op.output)}, {h * w}, {c}, {int(qop.act_min)}, "
            f"{int(qop.act_max)}, (int32_t *){addr(op.name + '.scratch')});"
        )

    return Lowered("", "", None, [], op_kind(op.kind).scratch(op, shapes, out_shape), call)


def lower_reshape(qop: Any, shapes: list, out_shape: tuple, fmt: WeightFormat) -> Lowered:
    return Lowered("", "", None, [], 0, lambda addr: "/* a view: no data movement */")


# --- CMSIS-NN lowerings (kernels/se_cmsis.c; core/engine/cmsis.py builds the library) ----------------


def _cmsis_qparams(qop: Any, ident: str, n: int) -> list[tuple[str, str, np.ndarray]]:
    bias = np.zeros(n, np.int32) if qop.bias is None else np.asarray(qop.bias, np.int32)
    return [(f"{ident}_bias", "int32_t", bias), (f"{ident}_mult", "int32_t", _vec(qop.multiplier, n)),
            (f"{ident}_shift", "int32_t", _vec(qop.shift, n))]


def cmsis_conv_like(qop: Any, shapes: list, out_shape: tuple) -> Lowered:
    from core.engine.cmsis import scratch_bytes

    op, w = qop.op, np.asarray(qop.weight, np.int8)
    ident = _c_ident(op.name)
    tail = f"{_zp(qop.in_q[0])}, {_zp(qop.out_q)}, {int(qop.act_min)}, {int(qop.act_max)}"
    if op.kind == "linear":
        (n, cin), (_, cout) = shapes[0], out_shape
        per_channel = int(np.size(qop.multiplier) == cout and cout > 1)
        arrays = _cmsis_qparams(qop, ident, cout if per_channel else 1)
        arrays[0] = (f"{ident}_bias", "int32_t", np.zeros(cout, np.int32) if qop.bias is None
                     else np.asarray(qop.bias, np.int32))
        arrays.append((f"{ident}_w", "int8_t", w.reshape(cout, cin).ravel()))

        def call(addr: Callable[[str], str]) -> str:
            return (f"se_cmsis_fc(SE_LAYER, {addr(op.inputs[0])}, {n}, {cin}, {ident}_w, {ident}_bias, "
                    f"{ident}_mult, {ident}_shift, {per_channel}, {addr(op.output)}, {cout}, {tail});")

        return Lowered("", "", None, arrays, 0, call, int(w.size) + 12 * cout)
    (h, wd, cin), (ho, wo, cout) = shapes[0], out_shape
    kh, kw = op.attrs["kernel"]
    stride, pad = int(op.attrs.get("stride", 1)), int(op.attrs.get("pad", 0))
    arrays = _cmsis_qparams(qop, ident, cout)
    arrays.append((f"{ident}_w", "int8_t", w.ravel()))  # (Cout, kh, kw, Cin): CMSIS-NN's OHWI
    scratch = scratch_bytes("conv2d", kh=kh, kw=kw, cin=cin)

    def call(addr: Callable[[str], str]) -> str:
        return (f"se_cmsis_conv(SE_LAYER, {addr(op.inputs[0])}, {h}, {wd}, {cin}, {ident}_w, {ident}_bias, "
                f"{ident}_mult, {ident}_shift, {addr(op.output)}, {ho}, {wo}, {cout}, {kh}, {kw}, {stride}, "
                f"{pad}, {tail}, (void *){addr(op.name + '.scratch')}, {scratch});")

    return Lowered("", "", None, arrays, scratch, call, int(w.size) + 12 * cout)


def cmsis_dwconv(qop: Any, shapes: list, out_shape: tuple) -> Lowered:
    from core.engine.cmsis import scratch_bytes

    op, w = qop.op, np.asarray(qop.weight, np.int8)
    (h, wd, c), (ho, wo, _) = shapes[0], out_shape
    kh, kw = op.attrs["kernel"]
    stride, pad = int(op.attrs.get("stride", 1)), int(op.attrs.get("pad", 0))
    ident = _c_ident(op.name)
    arrays = _cmsis_qparams(qop, ident, c)
    arrays.append((f"{ident}_w", "int8_t", w[..., 0].reshape(c, kh * kw).T.ravel()))  # [1, kh, kw, C]
    scratch = scratch_bytes("dwconv2d", c=c, kh=kh, kw=kw)
    tail = f"{_zp(qop.in_q[0])}, {_zp(qop.out_q)}, {int(qop.act_min)}, {int(qop.act_max)}"

    def call(addr: Callable[[str], str]) -> str:
        return (f"se_cmsis_dwconv(SE_LAYER, {addr(op.inputs[0])}, {h}, {wd}, {c}, {ident}_w, {ident}_bias, "
                f"{ident}_mult, {ident}_shift, {addr(op.output)}, {ho}, {wo}, {kh}, {kw}, {stride}, {pad}, "
                f"{tail}, (void *){addr(op.name + '.scratch')}, {scratch});")

    return Lowered("", "", None, arrays, scratch, call, int(w.size) + 12 * c)


def cmsis_matmul(qop: Any, shapes: list, out_shape: tuple) -> Lowered:
    from core.engine.cmsis import scratch_bytes

    op = qop.op
    heads = int(op.attrs["heads"])
    zps = f"{_zp(qop.in_q[0])}, {_zp(qop.in_q[1])}, {_requant_args(qop)}"
    if op.kind == "matmul_qk":
        (nq, d), (nk, _) = shapes
        scratch = scratch_bytes("matmul_qk", nq=nq, nk=nk, d=d // heads) if heads > 1 else 0

        def call(addr: Callable[[str], str]) -> str:
            return (f"se_cmsis_matmul_qk(SE_LAYER, {addr(op.inputs[0])}, {addr(op.inputs[1])}, "
                    f"{addr(op.output)}, {nq}, {nk}, {d}, {heads}, {zps}, "
                    f"(int8_t *){addr(op.name + '.scratch')});")
    else:
        (_, nq, nk), (_, d) = shapes
        scratch = scratch_bytes("matmul_av", nk=nk, d=d // heads)

        def call(addr: Callable[[str], str]) -> str:
            return (f"se_cmsis_matmul_av(SE_LAYER, {addr(op.inputs[0])}, {addr(op.inputs[1])}, "
                    f"{addr(op.output)}, {heads}, {nq}, {nk}, {d}, {zps}, "
                    f"(int8_t *){addr(op.name + '.scratch')});")

    return Lowered("", "", None, [], scratch, call)


def cmsis_softmax(qop: Any, shapes: list, out_shape: tuple) -> Lowered:
    """arm_softmax_s8 with TFLite's PreprocessSoftmaxScaling (beta 1, 5 integer bits); a different
    algorithm from the integer reference's softmax (see cmsis.SOFTMAX_NOTE), compared bit for bit."""
    from core.tinyformer import qmath

    op = qop.op
    shape = shapes[0]
    rows, length = int(np.prod(shape[:-1])), int(shape[-1])
    real = min(float(qop.in_q[0].scale) * (1 << 26), float((1 << 31) - 1))
    mult, shift = qmath.quantize_multiplier(real)
    diff_min = -int(np.floor(((1 << 5) - 1) * (1 << 26) / (1 << int(shift))))

    def call(addr: Callable[[str], str]) -> str:
        return (f"se_cmsis_softmax(SE_LAYER, {addr(op.inputs[0])}, {addr(op.output)}, {rows}, {length}, "
                f"{int(mult)}, {int(shift)}, {diff_min});")

    return Lowered("", "", None, [], 0, call)


#: op kinds a CMSIS-NN deployment runs on CMSIS-NN (not softmax: see cmsis.SOFTMAX_NOTE)
CMSIS_DEPLOY_KINDS = ("conv2d", "linear", "dwconv2d", "matmul_qk", "matmul_av")
