"""Float execution of a layer `Graph` with a torch model's weights: what the quantizer calibrates on.

The int8 model is built op by op from the graph IR, so its float twin must run the *same* ops in the
*same* layouts: `run_float` interprets `graph.ops` in order on batched tensors `(B, *TensorSpec.shape)`
(HWC feature maps, (N, D) tokens, (heads, Nq, Nk) attention maps) with the folded weights from
`extract_params`. Running the graph instead of hooking torch modules gives every tensor of the graph
a float value — attention scores, softmax outputs, residual sums and pooled features included —
and a test checks that its logits equal `model(x)`.

Each op's float semantics and parameter reading live with its kind in `core.tinyformer.ops`
(BatchNorm folding: `ops.conv.conv_params`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from core.errors import WorkbenchError
from core.tinyformer.graph import Graph, Op
from core.tinyformer.ops import op_kind
from core.tinyformer.ops.conv import conv_params as _conv_params  # noqa: F401 -- the tests' name

#: observe(tensor_name, value) is called for every tensor the interpreter produces (and the input)
Observer = Callable[[str, torch.Tensor], None]

def extract_params(model: torch.nn.Module, graph: Graph) -> dict[str, dict[str, Any]]:
    """Float64 parameters of every weighted op, found by `op.attrs["module"]` in `model`.

    conv2d / dwconv2d: {"w": (O, I or 1, kh, kw) folded with BN, "b": (O,)}; linear: {"w": (out, in),
    "b": (out,)}; layernorm: {"gamma", "beta": (D,), "eps"}. Weights are prefix-sliced to the op's
    shape, so a weight-sharing supernet works as well as a model built for the arch. Each op kind
    reads its own parameters (`core.tinyformer.ops`).
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
        p = op_kind(op.kind).params(mod, op)
        if p is not None:
            params[op.name] = p
    return params


def run_op(op: Op, args: list[torch.Tensor], p: dict[str, Any] | None) -> torch.Tensor:
    """One op on batched float tensors in graph layouts (see the module docstring)."""
    return op_kind(op.kind).run_float(op, args, p)


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
