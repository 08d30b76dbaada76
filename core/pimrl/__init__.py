"""PIMRL: physics-informed multi-scale recurrent learning, its baselines and their training.

Public face::

    MODELS, ABLATIONS, DataMeta, Surrogate, build_model, default_config,
    TrainConfig, TrainResult, train, save_checkpoint, load_checkpoint

See core/pimrl/model.py for the coupled model, micro.py / macro.py for its modules, train.py for
the two-stage training, and core/baselines/ for PeRCNN, ConvLSTM and FNO.
"""

from core.pimrl.base import DataMeta, State, Surrogate, save_checkpoint
from core.pimrl.macro import MacroConfig
from core.pimrl.micro import MicroConfig
from core.pimrl.model import PIMRL, PIMRLConfig
from core.pimrl.registry import ABLATIONS, CYCLE, MODELS, build_model, default_config, load_checkpoint
from core.pimrl.train import TrainConfig, TrainResult, train

__all__ = [
    "ABLATIONS", "CYCLE", "MODELS", "PIMRL", "DataMeta", "MacroConfig", "MicroConfig", "PIMRLConfig",
    "State", "Surrogate", "TrainConfig", "TrainResult", "build_model", "default_config", "load_checkpoint",
    "save_checkpoint", "train",
]
