"""Post-training int8 quantization of a TinyFormer candidate (TFLite / CMSIS-NN conventions).

`quantize(model, arch, calib_loader)` runs the float graph (`qfloat.run_float`) on a few calibration
batches, records the range of every tensor, and turns each op of `graph_of(arch)` into a `QOp`:

* activations: asymmetric int8, real = scale·(q − zero_point). Range [lo, hi] from calibration,
  widened to contain 0 (so real 0 — padding, ReLU — is exact); scale = (hi − lo)/255,
  zero_point = round(−128 − lo/scale). Calibration "minmax" takes the min/max over all calibration
  samples; "percentile" takes, per batch, the p-th and (100−p)-th percentiles and averages them over
  batches (clips rare outliers).
  Fixed by construction: softmax outputs (1/256, −128); reshape and pooling outputs share their
  input's (scale, zero_point); the network input uses `QuantConfig.input_scale/zero_point`
  (default 1/64 and 0: the data pipeline's (u8 − 128)/64 becomes exactly q = u8 − 128).
* conv2d / dwconv2d weights: BatchNorm folded, symmetric per output channel, s_w[o] = max|W[o]|/127,
  q = clamp(round(W/s_w), −127, 127). linear: per tensor, same formula over the whole matrix.
* bias: int32 round(b / (s_in·s_w)); requantization: real multiplier s_in·s_w/s_out ->
  `qmath.quantize_multiplier` (Q31 multiplier, shift).
* ReLU / ReLU6 become the clamp bounds `act_min/act_max` (`qmath.activation_range`).
* attention: matmul_qk multiplier s_q·s_k·(1/√dh)/s_s; softmax via an exp LUT built from s_s;
  matmul_av multiplier s_p·s_v/s_out. LayerNorm: γ as int16 with one scale s_γ, β as int32 in units
  s_γ·2^−10, multiplier s_γ·2^−10/s_out (see `intref.layernorm`); s_γ is chosen so that
  |γ_q·n| and |β_q| stay below 2^29. The integer LayerNorm has no ε: it only matters when a token's
  variance is below ~1e-5 in real units, i.e. a (nearly) constant token, whose output is then β.

Measured (shapes10, 2000 test images, 15 epochs, minmax calibration on 512 training images): float
vs int8 top-1 81.9 vs 81.5 % (conv_pool 16, D=32), 87.2 vs 86.7 %, 90.5 vs 90.6 % (two sampled
candidates), 91.8 vs 91.9 % (largest path of the default space); top-1 agreement 96.3–98.7 %.
Percentile (99.99) calibration was not better on these models, so minmax is the default.

`run_int8(qm, x)` runs the int8 model with the integer reference ops (`intref`), optionally keeping
every layer's output (what the engine compares with the C kernels, layer by layer).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.errors import WorkbenchError
from core.io import Progress, no_progress
from core.tinyformer import qfloat
from core.tinyformer.graph import Graph, graph_of
from core.tinyformer.ops import op_kind
from core.tinyformer.qtypes import QOp, QTensor
from core.tinyformer.quant_ops import quantize_op, run_qop

CALIBRATIONS = ("minmax", "percentile")


@dataclass(frozen=True)
class QuantConfig:
    """How to calibrate. `input_scale=None` calibrates the input range like any other tensor."""

    calibration: str = "minmax"
    percentile: float = 99.99
    calib_batches: int = 8
    input_scale: float | None = 1.0 / 64.0
    input_zero_point: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.calibration not in CALIBRATIONS:
            from core.errors import unknown

            raise unknown("calibration", self.calibration, CALIBRATIONS)
        if not 50.0 < self.percentile <= 100.0:
            raise WorkbenchError(f"percentile {self.percentile} must be in (50, 100]")
        if self.calib_batches < 1:
            raise WorkbenchError(f"calib_batches {self.calib_batches} must be at least 1")
        if self.input_scale is not None and not self.input_scale > 0:
            raise WorkbenchError(f"input_scale {self.input_scale} must be > 0 (or None to calibrate)")
        if not -128 <= self.input_zero_point <= 127:
            raise WorkbenchError(f"input_zero_point {self.input_zero_point} must be an int8 value")


@dataclass
class QuantizedModel:
    """The int8 model: the graph, one QOp per graph op (same order) and every tensor's QTensor."""

    graph: Graph
    qops: tuple[QOp, ...]
    input_q: QTensor
    output_q: QTensor
    tensor_q: dict[str, QTensor]
    arch: dict[str, Any]
    config: QuantConfig

    def qop(self, name: str) -> QOp:
        for q in self.qops:
            if q.op.name == name:
                return q
        raise WorkbenchError(f"no quantized op named {name!r}")


def qtensor_from_range(lo: float, hi: float) -> QTensor:
    """Asymmetric int8 parameters for a real range, widened to contain 0 (degenerate -> [0, 1])."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-8:
        lo, hi = 0.0, 1.0
    scale = (hi - lo) / 255.0
    zp = int(np.clip(np.round(-128.0 - lo / scale), -128, 127))
    return QTensor(scale, zp)


class _RangeObserver:
    """Collects per-tensor ranges from `qfloat.run_float` (min/max, or per-batch percentiles averaged)."""

    def __init__(self, config: QuantConfig) -> None:
        self.config = config
        self.ranges: dict[str, list[tuple[float, float]]] = {}
        self.gen = torch.Generator().manual_seed(config.seed)

    def __call__(self, name: str, t: torch.Tensor) -> None:
        flat = t.detach().reshape(-1)
        if self.config.calibration == "minmax":
            lo, hi = (float(v) for v in torch.aminmax(flat))
        else:
            if flat.numel() > 1_000_000:  # torch.quantile's input limit; a seeded subsample suffices
                flat = flat[torch.randint(flat.numel(), (1_000_000,), generator=self.gen)]
            p = self.config.percentile / 100.0
            lo, hi = (float(v) for v in torch.quantile(flat, torch.tensor([1.0 - p, p], dtype=flat.dtype)))
        self.ranges.setdefault(name, []).append((lo, hi))

    def qtensor(self, name: str) -> QTensor:
        rs = np.array(self.ranges[name])
        if self.config.calibration == "minmax":
            return qtensor_from_range(rs[:, 0].min(), rs[:, 1].max())
        return qtensor_from_range(rs[:, 0].mean(), rs[:, 1].mean())


def _images(batch: Any) -> torch.Tensor:
    x = batch[0] if isinstance(batch, list | tuple) else batch
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise WorkbenchError("calibration batches must be image tensors (B, C, H, W) or (images, labels)")
    return x


def to_hwc(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) images -> (B, H, W, C), the graph's input layout."""
    return x.permute(0, 2, 3, 1)


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block, then restore the caller's setting.

    float32 reductions (matmul, conv) sum in a thread-count-dependent order, so min/max calibration
    ranges -- and with them zero points, multipliers and every emulated instruction count -- would
    depend on how many cores the machine has; on one thread they are the same everywhere.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def quantize(model: torch.nn.Module, arch: dict[str, Any], calib_loader: Any,
             progress: Progress = no_progress, config: QuantConfig | None = None) -> QuantizedModel:
    """Quantize `model` (a `build(arch)` model or a supernet) for `arch`; see the module docstring."""
    config = config or QuantConfig()
    graph = graph_of(arch)
    model = model.eval()
    params = qfloat.extract_params(model, graph)
    obs = _RangeObserver(config)
    seen = 0
    with torch.no_grad(), _single_thread():
        for batch in calib_loader:
            x = to_hwc(_images(batch)).to("cpu", torch.float32)  # float32: calibration speed
            qfloat.run_float(graph, params, x, obs)
            seen += 1
            progress(seen, config.calib_batches, "calibrating")
            if seen >= config.calib_batches:
                break
    if seen == 0:
        raise WorkbenchError("the calibration loader yielded no batches; give it at least one")
    tq: dict[str, QTensor] = {}
    tq[graph.input] = (QTensor(config.input_scale, config.input_zero_point) if config.input_scale
                       else obs.qtensor(graph.input))
    qops = []
    for op in graph.ops:
        ins = tuple(tq[t] for t in op.inputs)
        tq[op.output] = op_kind(op.kind).output_q(ins, lambda name=op.output: obs.qtensor(name))
        qops.append(quantize_op(op, params.get(op.name), ins, tq[op.output]))
    progress(config.calib_batches, config.calib_batches, "quantized")
    return QuantizedModel(graph=graph, qops=tuple(qops), input_q=tq[graph.input], output_q=tq[graph.output],
                          tensor_q=tq, arch=arch, config=config)


def quantize_input(qm: QuantizedModel, images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Float images (B, C, H, W) -> int8 (B, H, W, C) with the model's input quantization."""
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    return qm.input_q.quantize(x.transpose(0, 2, 3, 1))  # (B, C, H, W) -> (B, H, W, C)


def run_int8(qm: QuantizedModel, x: np.ndarray, trace: bool = False
             ) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run the int8 model on one int8 image (H, W, C) with the `intref` ops.

    Returns the int8 output tensor (graph output shape, e.g. (1, classes)); with `trace=True` also a
    dict {tensor name: int8 array in its TensorSpec shape} holding the input and every op's output.
    """
    x, shapes = np.asarray(x), {t: spec.shape for t, spec in qm.graph.tensors.items()}
    if x.dtype != np.int8 or x.shape != shapes[qm.graph.input]:
        raise WorkbenchError(f"run_int8 needs an int8 image of shape {shapes[qm.graph.input]}, "
                             f"got {x.dtype} {x.shape}")
    env = {qm.graph.input: x}
    for q in qm.qops:
        env[q.op.output] = run_qop(q, [env[t] for t in q.op.inputs]).reshape(shapes[q.op.output])
    out = env[qm.graph.output]
    return (out, env) if trace else out


@dataclass(frozen=True)
class Int8Eval:
    """Float vs int8 on one dataset: accuracies, top-1 agreement and dequantized-logit errors.

    The float fields are None when no float model was given. Logit errors compare the int8 logits
    dequantized with `output_q` to the float model's logits on the same (int8-representable) input.
    """

    n: int
    int8_accuracy: float
    float_accuracy: float | None = None
    agreement: float | None = None
    logit_mae: float | None = None
    logit_max_abs: float | None = None


def evaluate_int8(qm: QuantizedModel, loader: Any, model: torch.nn.Module | None = None,
                  limit: int | None = None, progress: Progress = no_progress) -> Int8Eval:
    """Top-1 accuracy of the int8 model (`run_int8`, one image at a time) on `loader`'s (x, y) batches.

    With `model`, the float model runs on the same inputs (the images after input quantization, so
    both see identical pixels) and the comparison fields are filled. `limit` caps the image count.
    """
    hits = fhits = agree = n = 0
    errs: list[np.ndarray] = []
    total = limit or _dataset_len(loader)
    if model is not None:
        model = model.eval()
    for batch in loader:
        if not isinstance(batch, list | tuple) or len(batch) < 2:
            raise WorkbenchError("evaluation batches must be (images, labels) pairs")
        x, y = _images(batch), torch.as_tensor(batch[1]).reshape(-1).cpu()
        if limit is not None:
            x, y = x[: limit - n], y[: limit - n]
        xq = quantize_input(qm, x)  # (B, H, W, C) int8
        logits = qm.output_q.dequantize(np.stack([run_int8(qm, xi) for xi in xq])).reshape(len(xq), -1)
        pred = logits.argmax(1)
        hits += int((pred == y.numpy()).sum())
        if model is not None:
            xf = torch.from_numpy(qm.input_q.dequantize(xq)).permute(0, 3, 1, 2).float()  # -> (B, C, H, W)
            with torch.no_grad():
                flog = model(xf.to(next(model.parameters()).device)).cpu().double()
            flog = flog.numpy().reshape(len(xq), -1)
            fhits += int((flog.argmax(1) == y.numpy()).sum())
            agree += int((flog.argmax(1) == pred).sum())
            errs.append(np.abs(flog - logits))
        n += len(xq)
        progress(n, total, "int8 evaluation")
        if limit is not None and n >= limit:
            break
    if n == 0:
        raise WorkbenchError("the evaluation loader yielded no images")
    if model is None:
        return Int8Eval(n=n, int8_accuracy=hits / n)
    err = np.concatenate(errs)
    return Int8Eval(n=n, int8_accuracy=hits / n, float_accuracy=fhits / n, agreement=agree / n,
                    logit_mae=float(err.mean()), logit_max_abs=float(err.max()))


def _dataset_len(loader: Any) -> int:
    try:
        return len(loader.dataset)
    except (AttributeError, TypeError):
        return 0


def layer_errors(qm: QuantizedModel, model: torch.nn.Module, images: torch.Tensor) -> list[dict[str, Any]]:
    """Per-tensor int8 error against the float graph on the same (quantized) input images.

    One row per op output, in graph order: name, kind, scale, zero_point, rms_lsb (RMS of
    dequantized int8 − float, in units of the tensor's scale) and rel (that RMS over the float
    tensor's standard deviation). Shows where quantization error enters and how it accumulates.
    """
    xq = quantize_input(qm, images)  # (B, H, W, C) int8
    floats: dict[str, np.ndarray] = {}
    with torch.no_grad():
        qfloat.run_float(qm.graph, qfloat.extract_params(model.eval(), qm.graph),
                         torch.from_numpy(qm.input_q.dequantize(xq)),
                         lambda name, t: floats.__setitem__(name, t.numpy()))
    traces = [run_int8(qm, img, trace=True)[1] for img in xq]
    rows = []
    for q in qm.qops:
        t, tq = q.op.output, qm.tensor_q[q.op.output]
        err = tq.dequantize(np.stack([tr[t] for tr in traces])) - floats[t]
        rms = float(np.sqrt(np.mean(err**2)))
        rows.append({"name": t, "kind": q.op.kind, "scale": tq.scale, "zero_point": tq.zero_point,
                     "rms_lsb": rms / tq.scale, "rel": rms / (float(floats[t].std()) + 1e-12)})
    return rows
