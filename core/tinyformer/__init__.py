"""TinyFormer: search space, graph IR, op registry, schedule and memory planner, sparse format,
supernet, SuperNAS, SparseNAS.

Light imports only (no torch at package import): `graph_of`, the op registry (`OPS`, `op_kind`),
`schedule` and `plan`, the sparse codec and the search space. Torch-backed pieces live in `model`,
`supernet`, `prune`, `sparsenas`, `data`.
"""

from core.tinyformer.graph import OP_KINDS, Graph, Op, TensorSpec, graph_of
from core.tinyformer.memory import Plan, default_scratch, peak_sram, plan
from core.tinyformer.ops import OPS, op_kind
from core.tinyformer.schedule import Schedule, schedule
from core.tinyformer.space import SpaceConfig, sample, validate_arch

__all__ = ["OPS", "OP_KINDS", "Graph", "Op", "Plan", "Schedule", "SpaceConfig", "TensorSpec",
           "default_scratch", "graph_of", "op_kind", "peak_sram", "plan", "sample", "schedule",
           "validate_arch"]
