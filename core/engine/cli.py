"""`python -m core engine build|run|compare CANDIDATE`: deploy a NAS candidate on the emulated M7.

- build:   generate C for the candidate (data/nas/candidates.parquet) and cross-compile it; writes
           data/engine/<id>/ (model.c, model.h, kernels, firmware.elf) and a manifest with flash/SRAM.
- run:     build, then run one seeded input on the emulator: per-layer instructions and cycles.
- compare: run, then compare every layer with the integer reference (quant.run_int8) bit for bit.
"""

from __future__ import annotations

import argparse

from core.errors import WorkbenchError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("engine", help="SparseEngine: build | run | compare a NAS candidate on an emulated M7")
    p.add_argument("action", choices=("build", "run", "compare", "export"),
                   help="export: a firmware project for a board (see --out, --board)")
    p.add_argument("candidate", type=int, help="candidate id in data/nas/candidates.parquet")
    p.add_argument(
        "--sparse",
        choices=("auto", "dense"),
        default="auto",
        help="auto: sparse kernels where the blockwise encoding is smaller; dense: all dense",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random input image")
    _export_arguments(p)
    p.set_defaults(func=main)


def _export_arguments(p: argparse.ArgumentParser) -> None:
    """`engine export ID --out DIR`: the options of core.engine.export.export_firmware."""
    g = p.add_argument_group("export", "engine export ID --out DIR: a Makefile project for arm-none-eabi-gcc")
    g.add_argument("--out", help="folder to write (complete or not at all)")
    g.add_argument("--board", default="mps2-an500", help="stm32f746g-disco | mps2-an500 (runs in QEMU)")
    g.add_argument("--kernels", default="own",
                   help="own (SparseEngine kernels) | cmsis-nn (with --sparse dense)")
    g.add_argument("--cmsis-nn", dest="cmsis_nn", metavar="DIR",
                   help="CMSIS-NN checkout for --kernels cmsis-nn (default: $WORKBENCH_CMSIS_NN, then "
                        "../shared/third_party/CMSIS-NN)")
    g.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    g.add_argument("--no-run", action="store_true", help="build only: run neither QEMU nor Unicorn")
    g.add_argument("--timeout", type=float, default=60.0, help="seconds QEMU may run (default 60)")
    g.add_argument("--record", action="store_true",
                   help="also write the report to data/engine/<ID>/firmware_<board>.{md,json}")


def _export(args: argparse.Namespace) -> int:
    from core.engine.export import export_firmware
    from core.io import data_dir, to_jsonable, tqdm_progress, write_result

    if not args.out:
        raise WorkbenchError("engine export needs --out DIR, the folder to write the firmware project to")
    with tqdm_progress(f"engine export {args.candidate}") as progress:
        res = export_firmware(args.candidate, args.out, args.board, args.sparse, args.kernels, args.overwrite,
                              not args.no_run, args.timeout, cmsis_nn=args.cmsis_nn, progress=progress)
    if args.record:
        write_result(f"firmware_{res.board}", res.markdown(), {"report": to_jsonable(res.report)},
                     vars(args) | {"func": None}, folder=data_dir() / "engine" / str(args.candidate))
    print(res.uart.strip() or f"built {res.path} (not run)")
    print(f"\nexported to {res.path}\n")
    from core.engine.firmware_report import size_table

    print(size_table(res.report))
    return 0


def main(args: argparse.Namespace) -> int:
    import numpy as np

    from core.engine import models
    from core.engine.pipeline import deploy
    from core.io import atomic_path, data_dir, tqdm_progress

    if args.action == "export":
        return _export(args)
    if args.candidate < 0:
        raise WorkbenchError(f"candidate id {args.candidate} must be >= 0")
    build_dir = data_dir() / "engine" / "build" / str(args.candidate)
    # each run builds in a private temporary folder, renamed over build/<id> when it is done:
    # concurrent runs of one candidate never share a folder (build/ is the engine's own scratch)
    with atomic_path(build_dir, replace_dir=lambda _p: True) as work, \
            tqdm_progress(f"engine {args.action} {args.candidate}") as progress:
        work.mkdir()
        qm, row = models.candidate(args.candidate)
        if args.action == "build":
            from core.engine.codegen import choose_formats, generate
            from core.engine.toolchain import build

            program = generate(qm, work, choose_formats(qm, args.sparse))
            fw = build(program.sources, work)
            summary = {"flash_bytes": fw.flash_bytes, "sram_bytes": fw.sram_bytes,
                       "arena_bytes": program.arena_bytes, "sections": fw.sections}
            rows = []
        else:
            shape = qm.graph.tensors[qm.graph.input].shape
            x = np.random.default_rng(args.seed).integers(-128, 128, size=shape).astype(np.int8)
            dep = deploy(qm, work, x, args.sparse, compare=args.action == "compare", progress=progress)
            summary, rows = dep.summary(), dep.layers
    _write(args, row, build_dir, summary, rows)
    if args.action == "compare" and not summary.get("bit_exact"):
        bad = [r.name for r in rows if r.exact is False]
        raise WorkbenchError(f"the emulated model differs from the integer reference in layers: "
                             f"{', '.join(bad)}")
    return 0


def _write(args: argparse.Namespace, row: dict, build_dir, summary: dict, rows: list) -> None:
    """data/engine/<id>/manifest.json (+ engine_<action>.md/.json) and the table on stdout."""
    from core.io import data_dir, markdown_table, write_json_atomic, write_result

    out = data_dir() / "engine" / str(args.candidate)
    manifest = {"candidate": args.candidate, "action": args.action, "sparse": args.sparse, "seed": args.seed,
                "weights": row.get("weights"), "arch": row["arch"],
                "build_dir": str(build_dir.relative_to(data_dir())), **summary,
                "layers": [vars(r) for r in rows]}
    write_json_atomic(out / "manifest.json", manifest)
    cells = [[r.name, r.kind, r.storage, r.macs, r.instructions, r.cycles, r.exact] for r in rows]
    heads = ["layer", "kind", "storage", "MACs", "instructions", "est. cycles", "bit-exact"]
    table = markdown_table(heads, cells)
    head = "\n".join(f"- {k}: {v}" for k, v in summary.items() if k != "sections")
    title = f"# engine {args.action} candidate {args.candidate}"
    write_result(f"engine_{args.action}", f"{title}\n\n{head}\n\n{table}", {"summary": summary},
                 vars(args) | {"func": None}, folder=out)
    print(head)
    if rows:
        print(table)
