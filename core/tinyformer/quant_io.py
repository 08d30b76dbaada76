"""Save and load a `QuantizedModel` as one `.npz` file (numpy arrays + a JSON header, no pickle).

Layout: `meta` holds UTF-8 JSON {format, command, created, arch, config, input, tensor_q, ops: [{name,
w_scale, in_q, out_q, act_min, act_max, extra keys}]}; per op i the arrays `i.weight`, `i.bias`,
`i.multiplier`, `i.shift`, `i.w_scale` (when present) and `i.extra.<key>` (e.g. the softmax LUT).
The graph is rebuilt with `graph_of(arch)` and checked against the stored op names.
"""

from __future__ import annotations

import dataclasses
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import WorkbenchError
from core.io import atomic_path, command_line
from core.tinyformer.graph import graph_of
from core.tinyformer.quant import QOp, QTensor, QuantConfig, QuantizedModel

FORMAT = "tinyformer-int8/1"


def _qt(q: QTensor) -> list[float | int]:
    return [q.scale, q.zero_point]


def save_quantized(qm: QuantizedModel, path: Path | str) -> Path:
    """Write `qm` to `path` (.npz) atomically, recording the command that made it."""
    arrays: dict[str, np.ndarray] = {}
    ops = []
    for i, q in enumerate(qm.qops):
        for name in ("weight", "bias", "multiplier", "shift", "w_scale"):
            value = getattr(q, name)
            if value is not None:
                arrays[f"{i}.{name}"] = np.asarray(value)
        extra_scalars = {}
        for key, value in q.extra.items():
            if isinstance(value, np.ndarray):
                arrays[f"{i}.extra.{key}"] = value
            else:
                extra_scalars[key] = value
        ops.append({"name": q.op.name, "in_q": [_qt(t) for t in q.in_q], "out_q": _qt(q.out_q),
                    "act_min": q.act_min, "act_max": q.act_max, "extra": extra_scalars})
    meta = {"format": FORMAT, "command": command_line(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "arch": qm.arch, "config": dataclasses.asdict(qm.config),
            "tensor_q": {t: _qt(v) for t, v in qm.tensor_q.items()}, "ops": ops}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return path


def load_quantized(path: Path | str) -> QuantizedModel:
    """Read a file written by `save_quantized`; raises WorkbenchError when it is not one."""
    try:
        with np.load(Path(path), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise WorkbenchError(f"{str(path)!r} is not a quantized model file ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise WorkbenchError(f"{str(path)!r} has format {meta.get('format')!r}; expected {FORMAT!r}")
    graph = graph_of(meta["arch"])
    if [op.name for op in graph.ops] != [o["name"] for o in meta["ops"]]:
        raise WorkbenchError(f"{str(path)!r} does not match the graph of its architecture")
    tq = {t: QTensor(float(s), int(z)) for t, (s, z) in meta["tensor_q"].items()}
    qops = []
    for i, (op, o) in enumerate(zip(graph.ops, meta["ops"])):
        extra: dict[str, Any] = dict(o["extra"])
        prefix = f"{i}.extra."
        extra.update({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
        qops.append(QOp(op=op, weight=arrays.get(f"{i}.weight"), bias=arrays.get(f"{i}.bias"),
                        w_scale=arrays.get(f"{i}.w_scale"), multiplier=arrays[f"{i}.multiplier"],
                        shift=arrays[f"{i}.shift"],
                        in_q=tuple(QTensor(float(s), int(z)) for s, z in o["in_q"]),
                        out_q=QTensor(float(o["out_q"][0]), int(o["out_q"][1])), act_min=int(o["act_min"]),
                        act_max=int(o["act_max"]), extra=extra))
    return QuantizedModel(graph=graph, qops=tuple(qops), input_q=tq[graph.input], output_q=tq[graph.output],
                          tensor_q=tq, arch=meta["arch"], config=QuantConfig(**meta["config"]))
