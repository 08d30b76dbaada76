"""PIMRL: physics-informed multi-scale recurrent learning, its baselines and their training.

Public face::

    DataMeta, Surrogate, State, save_checkpoint, read_checkpoint,
    MicroConfig, MacroConfig, PIMRLConfig, PIMRL, MicroCell, MacroModule

See core/pimrl/model.py for the coupled model and micro.py / macro.py for its modules. The model
registry (with the baselines, schemes and references) is `core.surrogates`; training is
`core.training`. Names resolve lazily so that importing the package does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "DataMeta": "base", "State": "base", "Surrogate": "base", "save_checkpoint": "base",
    "read_checkpoint": "base", "MacroConfig": "macro", "MacroModule": "macro", "MicroConfig": "micro",
    "MicroCell": "micro", "PIMRL": "model", "PIMRLConfig": "model",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'core.pimrl' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"core.pimrl.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
