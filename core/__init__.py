"""PIMRL x TinyFormer workbench engine.

`core` computes; it never imports a UI library. The Panel app (`app/`) and the notebooks call the
public functions of the sub-packages:

- `core.physics`    PDE systems and reference solvers
- `core.datasets`   burst-sampled multi-scale trajectories (xarray / zarr / torch views)
- `core.pimrl`      micro cell, macro model, coupled PIMRL model, training
- `core.baselines`  PeRCNN, ConvLSTM, FNO under the same interface
- `core.rollout`    autoregressive rollouts as generators of frames
- `core.metrics`    per-step error metrics as xarray
- `core.tinyformer` search space, supernet, SuperNAS, SparseNAS, pruning, int8 quantization
- `core.engine`     SparseEngine: C code generation, cross-compilation, Cortex-M7 emulation
"""

__version__ = "0.1.0"
