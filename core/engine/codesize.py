"""A per-op code-size model of SparseEngine programs, measured from built ELFs.

The flash of a deployed model is its constants (weights, quantization parameters, LUTs: what
`core.tinyformer.cost` counts per layer) plus code. Code is, per program:

    base     startup (vector table, reset handler, halt, layer marker) and main
    kernels  each distinct specialised kernel once (`kernels.KernelKey`: op, kernel, stride, pad,
             block), with its static helpers: the ELF symbols named `<key name>` and `<key name>_*`
    library  each shape-generic function the program's op kinds call (se_ops.c), once
    runtime  compiler-rt helpers some kinds pull in (64-bit division in softmax/LayerNorm), once
    glue     model_run's code per layer (the marker store and the call with its arguments)

`measure()` builds a set of programs covering every kernel key the search spaces produce, reads the
function symbols of each ELF (pyelftools) and writes `code_size.json` next to this module (shipped);
`estimate(graph, storage, blocks)` adds the table's entries for a graph without building anything
(what NAS uses). A key missing from the table costs the largest measured key of its op (noted in
`estimate`'s `unknown` list). `python -m core.engine.codesize` re-measures.
"""

from __future__ import annotations

import functools
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from core.engine.kernels import KernelKey
from core.tinyformer.ops import kinds_where

TABLE = Path(__file__).resolve().parent / "code_size.json"
BASE_FUNCS = ("Reset_Handler", "main", "se_halt", "se_mark")
#: library functions each op kind calls (kernels/se_ops.c); sparse conv-like kernels add se_requant_column
LIBRARY = {
    "matmul_qk": ("se_matmul_qk", "se_q15_rows", "se_mm2_q15"),
    "matmul_av": ("se_matmul_av", "se_q15_rows", "se_mm2_q15"),
    "attention": ("se_attention", "se_mm2_q15"),  # se_softmax and se_q15_rows inline into se_attention
    "softmax": ("se_softmax",),
    "layernorm": ("se_layernorm",),
    "add": ("se_add",),
    "maxpool": ("se_maxpool",),
    "avgpool": ("se_avgpool_global",),
}


def function_sizes(elf: Path) -> dict[str, int]:
    """Function symbol -> size in bytes (aliases at one address counted once, under the shortest name)."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    by_addr: dict[int, tuple[str, int]] = {}
    with open(elf, "rb") as fh:
        for sec in ELFFile(fh).iter_sections():
            if not isinstance(sec, SymbolTableSection):
                continue
            for s in sec.iter_symbols():
                if s["st_info"]["type"] != "STT_FUNC" or not s.name or not s["st_size"]:
                    continue
                addr = s["st_value"] & ~1
                old = by_addr.get(addr)
                if old is None or len(s.name) < len(old[0]):
                    by_addr[addr] = (s.name, int(s["st_size"]))
    return dict(by_addr.values())


def keys_of(graph: Any, storage: dict[str, str] | None = None, blocks: dict[str, int] | None = None
            ) -> list[KernelKey]:
    """The kernel keys a program for `graph` instantiates (storage: layer -> "dense"/"sparse";
    blocks: layer -> block size, default the largest valid one, as `codegen.choose_formats`)."""
    from core.tinyformer import sparse as codec

    storage, blocks = storage or {}, blocks or {}
    keys = []
    for op in graph.ops:
        if op.kind not in kinds_where("sparse_capable"):
            continue
        kh, kw = op.attrs.get("kernel", (1, 1)) if op.kind != "linear" else (1, 1)
        stride = int(op.attrs.get("stride", 1)) if op.kind != "linear" else 1
        pad = int(op.attrs.get("pad", 0)) if op.kind != "linear" else 0
        dw = op.kind == "dwconv2d"
        if storage.get(op.name) == "sparse":
            ws = op.weight_shape
            ws = ws if len(ws) == 4 else (ws[0], 1, 1, ws[1])
            b = int(blocks.get(op.name) or max(codec.block_size_choices(ws)))
            keys.append(KernelKey("sparse_dwconv2d" if dw else "sparse_conv2d", kh, kw, stride, pad, b))
        else:
            keys.append(KernelKey("dwconv2d" if dw else "conv2d", kh, kw, stride, pad))
    return keys


@functools.lru_cache(maxsize=1)
def load_table() -> dict[str, Any]:
    """The shipped table (read once per process)."""
    from core.errors import WorkbenchError

    if not TABLE.is_file():
        raise WorkbenchError(f"the code-size table {TABLE} is missing; run `python -m core.engine.codesize`")
    return json.loads(TABLE.read_text())


def estimate(graph: Any, storage: dict[str, str] | None = None, blocks: dict[str, int] | None = None,
             table: dict[str, Any] | None = None) -> dict[str, Any]:
    """Code bytes of the program for `graph` with per-layer storage: {"bytes", "parts", "unknown"}."""
    t = table or load_table()
    keys = sorted(set(keys_of(graph, storage, blocks)), key=lambda k: k.name)
    kinds = {op.kind for op in graph.ops}
    parts = {"base": int(t["base"]), "glue": int(round(t["glue_per_layer"] * len(graph.ops)))}
    unknown = []
    kbytes = 0
    for k in keys:
        if k.name in t["kernels"]:
            kbytes += t["kernels"][k.name]
        else:
            same = [v for name, v in t["kernels"].items() if name.startswith(f"se_{k.op}_k")]
            kbytes += max(same, default=max(t["kernels"].values()))
            unknown.append(k.name)
    parts["kernels"] = kbytes
    funcs = {f for kind in kinds for f in LIBRARY.get(kind, ())}
    if any(k.op.startswith("sparse_") for k in keys):
        funcs.add("se_requant_column")
    parts["library"] = sum(t["library"].get(f, 0) for f in funcs)
    runtime = {f for kind in kinds for f in t["runtime_by_kind"].get(kind, ())}
    parts["runtime"] = sum(t["runtime"][f] for f in runtime)
    return {"bytes": sum(parts.values()), "parts": parts, "unknown": unknown}


def _programs() -> list[tuple[str, Any, dict]]:
    """(label, model, formats) covering the kernel keys of the search spaces and every library op."""
    import numpy as np

    from core.engine import synth
    from core.engine.lowering import WeightFormat

    out = []
    rng = np.random.default_rng(0)
    conv = [(1, 1, 0), (3, 1, 1), (3, 2, 1), (2, 2, 0), (4, 4, 0)]  # (k, stride, pad)
    for k, s, p in conv:
        shape = {"k": k, "stride": s, "pad": p, "cin": 8, "cout": 8, "h": 8, "w": 8}
        m = synth.single_op("conv2d", rng, sparsity=0.5, block=4, **shape)
        for fmt in (WeightFormat(), WeightFormat(True, 1), WeightFormat(True, 2), WeightFormat(True, 4)):
            out.append((f"conv k{k} s{s} p{p} {fmt}", m, {"layer": fmt}))
    for s in (1, 2):
        m = synth.single_op("dwconv2d", rng, sparsity=0.5, block=3, k=3, stride=s, pad=1, cin=8, h=8, w=8)
        for fmt in (WeightFormat(), WeightFormat(True, 1), WeightFormat(True, 3)):
            out.append((f"dw s{s} {fmt}", m, {"layer": fmt}))
    for kind in LIBRARY:
        m = synth.single_op(kind, rng)
        out.append((kind, m, {}))
    # whole models (the glue per layer: model_run with realistic arena offsets and argument counts)
    from core.engine import bench, codegen, models

    qm = models.quantize_arch(bench.WHOLE_ARCH, seed=0)
    for label, q in (("seeded arch", qm), ("seeded arch 90% b4", models.prune_int8(qm, 0.9, 4))):
        out.append((f"whole: {label}", q, codegen.choose_formats(q, "auto")))
    return out


def measure(work: Path | None = None, extra: list[tuple[str, Any, dict]] = ()) -> dict[str, Any]:
    """Build the measurement programs (plus `extra`), read their ELFs, return the table."""
    from core.engine import codegen, toolchain

    kernels: dict[str, int] = {}
    library: dict[str, int] = {}
    runtime: dict[str, int] = {}
    runtime_by_kind: dict[str, set[str]] = {}
    base, glue = [], []
    known_lib = {f for fs in LIBRARY.values() for f in fs} | {"se_requant_column"}
    with tempfile.TemporaryDirectory(prefix="codesize-") as tmp:
        root = Path(work or tmp)
        for i, (label, model, formats) in enumerate([*_programs(), *extra]):
            d = root / f"p{i}"
            prog = codegen.generate(model, d, formats or codegen.choose_formats(model, "dense"))
            fw = toolchain.build(prog.sources, d)
            sizes = function_sizes(fw.elf)
            keys = {low.key.name for low in codegen.lower(model, prog.formats) if low.key is not None}
            for name in keys:
                kernels[name] = sum(v for f, v in sizes.items() if f == name or f.startswith(name + "_"))
            for f, v in sizes.items():
                if f in known_lib:
                    library[f] = v
                elif not f.startswith("se_") and f not in BASE_FUNCS and f != "model_run" \
                        and f not in ("memset", "memcpy"):
                    runtime[f] = v
                    for kind in {q.op.kind for q in model.qops}:
                        if kind in LIBRARY:
                            runtime_by_kind.setdefault(kind, set()).add(f)
            base.append(8 + sum(sizes.get(f, 0) for f in BASE_FUNCS))
            if label.startswith("whole: "):
                glue.append((sizes.get("model_run", 0), len(prog.layers)))
    # glue: model_run bytes per layer of the whole models (markers, calls and their arguments)
    per_layer = sum(g for g, _ in glue) / max(sum(n for _, n in glue), 1)
    return {"what": "code bytes per kernel key / library function / runtime helper, from ELF symbols",
            "zig_cflags": " ".join(toolchain.CFLAGS), "base": max(base), "glue_per_layer": per_layer,
            "kernels": dict(sorted(kernels.items())), "library": dict(sorted(library.items())),
            "runtime": dict(sorted(runtime.items())),
            "runtime_by_kind": {k: sorted(v) for k, v in sorted(runtime_by_kind.items())}}


def main() -> int:
    from core.io import write_json_atomic

    table = measure()
    write_json_atomic(TABLE, table)
    print(f"wrote {TABLE}: {len(table['kernels'])} kernels, {len(table['library'])} library functions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
