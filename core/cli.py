"""`python -m core ...`: the command-line face of the workbench.

Each concern owns its commands: a module listed in `COMMANDS` exposes `register(subparsers)` that
adds its parser and sets `func(args) -> int`; a module in `BENCHMARKS` does the same under
`python -m core bench`. Modules import heavy libraries inside their handlers so `--help` stays fast.
A `WorkbenchError` is printed as one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from core.errors import WorkbenchError

#: top-level commands, in the order `--help` lists them
COMMANDS: list[str] = [
    "core.engine.cli",  # engine build | run | compare CANDIDATE
    "core.datasets.cli",  # data generate | list
    "core.training.cli",  # train | evaluate
    "core.tinyformer.cli",  # nas supernas | supernet | sparsenas | show | download-cifar10
]

#: `python -m core bench NAME`
BENCHMARKS: list[str] = [
    "core.engine.bench",  # bench engine
    "core.bench.solvers",  # bench solvers | convergence
    "core.tinyformer.bench",  # bench nas
    "core.bench.pimrl",  # bench pimrl
    "core.appbench",  # bench app
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core",
        description="PIMRL x TinyFormer workbench: data, training, evaluation, NAS, SparseEngine, "
        "benchmarks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    bench = sub.add_parser("bench", help="benchmarks: print a table and write it to data/results/")
    bench_sub = bench.add_subparsers(dest="bench", metavar="BENCH")
    bench_sub.required = True
    for name in BENCHMARKS:
        importlib.import_module(name).register(bench_sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
