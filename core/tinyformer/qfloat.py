"""Float execution of a layer `Graph` with a torch model's weights: what the quantizer calibrates on.

The int8 model is built op by op from the graph IR, so its float twin must run the *same* ops in the
*same* layouts: `run_float` interprets `graph.ops` in order on batched tensors `(B, *TensorSpec.shape)`
(HWC feature maps, (N, D) tokens, (heads, Nq, Nk) attention maps) with the folded weights from
`extract_params`. Running the graph instead of hooking torch modules gives every tensor of the graph
a float value — attention scores, softmax outputs, residual sums and pooled features included —
and a test checks that its logits equal `model(x)`.

BatchNorm folding (eval mode): W' = W·γ/√(σ²+ε) per output channel, b' = β − μ·γ/√(σ²+ε).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from core.errors import WorkbenchError
from core.tinyformer.graph import Graph, Op

#: observe(tensor_name, value) is called for every tensor the interpreter produces (and the input)
Observer = Callable[[str, torch.Tensor], None]

_ACTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "none": lambda x: x, "relu": F.relu, "relu6": F.relu6,
}


def _prefix(t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """The leading slice of `t` with `shape` (a supernet's shared weight sliced to one path)."""
    if t.dim() != len(shape) or any(s > n for s, n in zip(shape, t.shape)):
        raise WorkbenchError(f"weight of shape {tuple(t.shape)} cannot hold the graph's {shape}")
    return t[tuple(slice(0, s) for s in shape)]


def _conv_params(mod: torch.nn.Module, op: Op) -> dict[str, torch.Tensor]:
    """Folded conv weight in torch layout (O, I, kh, kw) and bias (O,), sliced to the op's shape."""
    conv = getattr(mod, "conv", mod)
    bn = getattr(mod, "bn", None)
    o, kh, kw, i = op.weight_shape
    w = _prefix(conv.weight.detach().cpu().double(), (o, i, kh, kw))
    b = torch.zeros(o, dtype=torch.float64)
    if getattr(conv, "bias", None) is not None:
        b = _prefix(conv.bias.detach().cpu().double(), (o,))
    if bn is not None:
        def vec(t: torch.Tensor) -> torch.Tensor:
            return _prefix(t.detach().cpu().double(), (o,))

        g = vec(bn.weight) / torch.sqrt(vec(bn.running_var) + bn.eps)
        b = vec(bn.bias) + (b - vec(bn.running_mean)) * g
        w = w * g[:, None, None, None]
    return {"w": w, "b": b}


def extract_params(model: torch.nn.Module, graph: Graph) -> dict[str, dict[str, Any]]:
    """Float64 parameters of every weighted op, found by `op.attrs["module"]` in `model`.

    conv2d / dwconv2d: {"w": (O, I or 1, kh, kw) folded with BN, "b": (O,)}; linear: {"w": (out, in),
    "b": (out,)}; layernorm: {"gamma", "beta": (D,), "eps"}. Weights are prefix-sliced to the op's
    shape, so a weight-sharing supernet works as well as a model built for the arch.
    """
    params: dict[str, dict[str, Any]] = {}
    for op in graph.ops:
        name = op.attrs.get("module")
        if name is None:
            continue
        try:
            mod = model.get_submodule(name)
        except AttributeError as exc:
            raise WorkbenchError(f"model has no module {name!r} for graph op {op.name!r}") from exc
        if op.kind in ("conv2d", "dwconv2d"):
            params[op.name] = _conv_params(mod, op)
        elif op.kind == "linear":
            out, inp = op.weight_shape
            b = torch.zeros(out) if mod.bias is None else mod.bias.detach().cpu()
            b = b.double()
            w = _prefix(mod.weight.detach().cpu().double(), (out, inp))
            params[op.name] = {"w": w, "b": _prefix(b, (out,))}
        elif op.kind == "layernorm":
            (d,) = op.weight_shape
            params[op.name] = {"gamma": _prefix(mod.weight.detach().cpu().double(), (d,)),
                               "beta": _prefix(mod.bias.detach().cpu().double(), (d,)), "eps": float(mod.eps)}
    return params


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, d = t.shape
    return t.reshape(b, n, heads, d // heads).transpose(1, 2)  # (B, N, D) -> (B, heads, N, dh)


def _pool(op: Op, x: torch.Tensor) -> torch.Tensor:
    """Max / average pooling of (B, H, W, C); global average pooling gives (B, 1, C)."""
    if op.kind == "avgpool" and op.attrs.get("global", False):
        return x.mean(dim=(1, 2))[:, None, :]  # (B, H, W, C) -> (B, 1, C)
    k = _pair(op.attrs["kernel"])
    s = _pair(op.attrs.get("stride", k))
    p = _pair(op.attrs.get("pad", 0))
    xc = x.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
    if op.kind == "maxpool":
        y = F.max_pool2d(xc, k, s, p)
    else:
        y = F.avg_pool2d(xc, k, s, p, count_include_pad=False)
    return y.permute(0, 2, 3, 1)  # (B, C, Ho, Wo) -> (B, Ho, Wo, C)


def run_op(op: Op, args: list[torch.Tensor], p: dict[str, Any] | None) -> torch.Tensor:
    """One op on batched float tensors in graph layouts (see the module docstring)."""
    act = _ACTS[op.attrs.get("act", "none")]
    x = args[0]
    if op.kind in ("conv2d", "dwconv2d"):
        groups = x.shape[3] if op.kind == "dwconv2d" else 1
        y = F.conv2d(x.permute(0, 3, 1, 2), p["w"].to(x.dtype), p["b"].to(x.dtype),  # HWC -> CHW
                     _pair(op.attrs.get("stride", 1)), _pair(op.attrs.get("pad", 0)), 1, groups)
        return act(y.permute(0, 2, 3, 1))  # (B, C, H, W) -> (B, H, W, C)
    if op.kind == "linear":
        return act(F.linear(x, p["w"].to(x.dtype), p["b"].to(x.dtype)))
    if op.kind == "layernorm":
        return F.layer_norm(x, (x.shape[-1],), p["gamma"].to(x.dtype), p["beta"].to(x.dtype), p["eps"])
    if op.kind == "matmul_qk":
        heads = op.attrs["heads"]
        return (_heads(x, heads) @ _heads(args[1], heads).transpose(-1, -2)) * op.attrs.get("scale", 1.0)
    if op.kind == "softmax":
        return torch.softmax(x, dim=-1)
    if op.kind == "matmul_av":
        o = x @ _heads(args[1], op.attrs["heads"])  # (B, heads, Nq, dh)
        return o.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)  # -> (B, Nq, heads·dh)
    if op.kind == "add":
        return act(x + args[1])
    if op.kind in ("maxpool", "avgpool"):
        return act(_pool(op, x))
    if op.kind == "reshape":
        return x
    raise WorkbenchError(f"op {op.name!r} has kind {op.kind!r}, which the quantizer does not support")


def run_float(graph: Graph, params: dict[str, dict[str, Any]], x: torch.Tensor,
              observe: Observer | None = None) -> torch.Tensor:
    """Run `graph` on a batch `x` of shape (B, *input_shape) (HWC images); returns the output tensor.

    Every produced tensor is reshaped to (B, *TensorSpec.shape) and passed to `observe`.
    """
    env = {graph.input: x}
    if observe is not None:
        observe(graph.input, x)
    for op in graph.ops:
        y = run_op(op, [env[t] for t in op.inputs], params.get(op.name))
        y = y.reshape(x.shape[0], *graph.tensors[op.output].shape)  # (B, *graph shape)
        env[op.output] = y
        if observe is not None:
            observe(op.output, y)
    return env[graph.output]
