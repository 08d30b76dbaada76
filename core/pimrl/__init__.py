"""PIMRL: physics-informed multi-scale recurrent learning, its baselines and their training.

Public face::

    MODELS, ABLATIONS, CYCLE, DataMeta, Surrogate, State, build_model, default_config,
    MicroConfig, MacroConfig, PIMRLConfig, PIMRL,
    TrainConfig, TrainResult, train, save_checkpoint, load_checkpoint

See core/pimrl/model.py for the coupled model, micro.py / macro.py for its modules, training.py for
the two-stage training, and core/baselines/ for PeRCNN, ConvLSTM and FNO. Names resolve lazily so
that `python -m core --help` (which imports core.pimrl.cli) does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "DataMeta": "base", "State": "base", "Surrogate": "base", "save_checkpoint": "base",
    "MacroConfig": "macro", "MicroConfig": "micro", "PIMRL": "model", "PIMRLConfig": "model",
    "ABLATIONS": "registry", "CYCLE": "registry", "MODELS": "registry", "build_model": "registry",
    "default_config": "registry", "load_checkpoint": "registry",
    "TrainConfig": "training", "TrainResult": "training", "train": "training",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'core.pimrl' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"core.pimrl.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
