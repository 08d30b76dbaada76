"""Baselines under the PIMRL surrogate interface: PeRCNN (micro cell alone), ConvLSTM (macro alone), FNO.

``core.baselines.numerical`` (classic schemes stepping the reference physics) is owned by the
eval/UI concern. Build any of them by name with ``core.surrogates.build_model``.
"""

from core.baselines.convlstm import ConvLSTM
from core.baselines.fno import FNO, FNOConfig
from core.baselines.percnn import MicroOnly, PeRCNN

__all__ = ["FNO", "ConvLSTM", "FNOConfig", "MicroOnly", "PeRCNN"]
