"""Pareto fronts of minimization objectives (SparseNAS selection, the explorer's front)."""

from __future__ import annotations

from collections.abc import Sequence


def pareto_ranks(points: Sequence[Sequence[float]]) -> list[int]:
    """Front index of every point (0 = non-dominated) for objectives that are all minimized.

    A point dominates another when it is no worse in every objective and better in one; front k + 1
    is the non-dominated set once fronts 0..k are removed (NSGA-II's non-dominated sorting).
    """
    n = len(points)
    dominated_by = [0] * n
    dominates: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            a, b = points[i], points[j]
            if all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b)):
                dominates[i].append(j)
                dominated_by[j] += 1
            elif all(y <= x for x, y in zip(a, b)) and any(y < x for x, y in zip(a, b)):
                dominates[j].append(i)
                dominated_by[i] += 1
    ranks = [0] * n
    front = [i for i in range(n) if dominated_by[i] == 0]
    k = 0
    while front:
        nxt = []
        for i in front:
            ranks[i] = k
            for j in dominates[i]:
                dominated_by[j] -= 1
                if dominated_by[j] == 0:
                    nxt.append(j)
        front, k = nxt, k + 1
    return ranks


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points (all objectives minimized), in input order."""
    return [i for i, r in enumerate(pareto_ranks(points)) if r == 0]
