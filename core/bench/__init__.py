"""Benchmarks that stand above what they measure: each module here imports the concerns it trains,
times and scores (never the other way round) and writes ``data/results/<name>.{md,json}``.

`python -m core bench pimrl` (core.bench.pimrl) and `bench solvers|convergence` (core.bench.solvers)
live here; the NAS and engine benchmarks still live beside their concerns (core/tinyformer/bench.py,
core/engine/bench.py) and move here next.
"""
