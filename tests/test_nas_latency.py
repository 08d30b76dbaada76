"""The fitted latency model: NNLS recovers known costs, sums layers, matches the emulator; Pareto fronts."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from core.errors import WorkbenchError
from core.tinyformer import latency
from core.tinyformer.graph import graph_of
from core.tinyformer.pareto import pareto_front, pareto_ranks
from core.tinyformer.space import SpaceConfig, sample


def test_fit_recovers_nonnegative_costs() -> None:
    rng = np.random.default_rng(0)
    true = np.array([1.5, 0.0, 7.0, 300.0])
    rows = []
    for _ in range(30):
        f = [float(v) for v in rng.uniform(1, 1e4, 3)] + [1.0]
        y = float(np.dot(true, f))
        rows.append({"group": "g", "features": f, "cycles": [int(0.8 * y), int(round(y)), int(1.3 * y)]})
    m = latency.fit(rows)
    assert np.allclose(m.coef["g"]["point"], true, rtol=1e-3, atol=1e-2)
    assert m.fit_error["g"] < 1e-4
    assert m.op_cycles("g", np.array([10.0, 10.0, 10.0, 1.0]))[1] == pytest.approx(385.0, rel=1e-3)
    with pytest.raises(WorkbenchError, match="no fit for 'other'"):
        m.op_cycles("other", np.ones(4))


def test_compare_points_names_what_a_remeasure_moved() -> None:
    def row(kind, cin, cycles, group="g"):  # noqa: ANN001, ANN202
        return {"kind": kind, "shape": {"cin": cin}, "group": group, "features": [1.0, cin], "cycles": cycles}

    old = [row("conv2d", 8, [1, 2, 3]), row("conv2d", 16, [2, 4, 6]), row("linear", 8, [5, 6, 7], "h")]
    new = [row("linear", 8, [5, 6, 7], "h"), row("conv2d", 16, [2, 3, 6]), row("add", 4, [1, 1, 1], "a")]
    assert latency.compare_points(old, new) == {"same": 1, "changed": {"g": 1}, "added": 1, "dropped": 1}
    assert latency.compare_points(old, old)["changed"] == {}


def test_shipped_model_covers_the_space_and_sums_layers() -> None:
    m = latency.load()
    space = SpaceConfig(width_mult=2.5, n_downsample=2)
    rng = random.Random(0)
    for _ in range(5):
        g = graph_of(sample(space, rng))
        sp = {op.name: 0.9 for op in g.ops if op.kind in latency.WEIGHTED}
        dense, sparse = m.predict(g), m.predict(g, sp, {k: 1 for k in sp})
        rows = m.layers(g, sp, {k: 1 for k in sp})
        assert sparse["cycles"] == pytest.approx(sum(r["cycles"] for r in rows))
        assert sparse["cycles_optimistic"] <= sparse["cycles"] <= sparse["cycles_conservative"]
        assert sparse["cycles"] < dense["cycles"]  # 90% sparse is faster than dense


def test_fit_matches_fresh_emulator_measurements() -> None:
    """Two single ops measured now on the emulator, predicted by the shipped fit within 10%."""
    m = latency.load()
    for point in ({"kind": "conv2d", "shape": {"k": 1, "h": 8, "w": 8, "cin": 80, "cout": 80,
                                               "sparsity": 0.8, "block": 4}},
                  {"kind": "linear", "shape": {"n": 64, "cin": 120, "cout": 120}}):
        row = latency.measure_point(point)
        pred = m.op_cycles(row["group"], np.array(row["features"]))[1]
        assert pred == pytest.approx(row["cycles"][1], rel=0.1), point


def test_pareto_ranks_match_brute_force() -> None:
    rng = random.Random(3)
    pts = [(rng.randint(0, 5), rng.randint(0, 5)) for _ in range(40)]
    ranks = pareto_ranks(pts)

    def dominates(a, b):  # noqa: ANN001, ANN202
        return all(x <= y for x, y in zip(a, b)) and a != b

    remaining, k = set(range(len(pts))), 0
    while remaining:
        front = {i for i in remaining if not any(dominates(pts[j], pts[i]) for j in remaining)}
        assert {i for i in range(len(pts)) if ranks[i] == k} == front
        remaining -= front
        k += 1
    assert pareto_front(pts) == sorted(i for i in range(len(pts)) if ranks[i] == 0)
    for i, j in itertools.combinations(range(len(pts)), 2):
        if dominates(pts[i], pts[j]):
            assert ranks[i] < ranks[j]
