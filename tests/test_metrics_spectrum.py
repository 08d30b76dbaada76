"""`core.metrics.energy_spectrum` against hand-computed spectra of single Fourier modes."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import WorkbenchError
from core.metrics import energy_spectrum


def test_single_modes_land_in_their_shells_with_half_their_squared_amplitude():
    n = 16
    y, x = np.meshgrid(np.arange(n) / n, np.arange(n) / n, indexing="ij")
    # cos(2π·3x): E(3) = 1/2; 2·sin(2π·4y): E(4) = 2²/2 = 2; cos(2π(3x + 4y)): |k| = 5, E(5) = 1/2
    u = np.cos(2 * np.pi * 3 * x) + 2 * np.sin(2 * np.pi * 4 * y) + np.cos(2 * np.pi * (3 * x + 4 * y))
    k, e = energy_spectrum(u, 2)
    expected = np.zeros_like(e)
    expected[3], expected[4], expected[5] = 0.5, 2.0, 0.5
    np.testing.assert_array_equal(k, np.arange(len(e)))
    np.testing.assert_allclose(e, expected, atol=1e-12)
    assert e.sum() == pytest.approx(np.mean(u ** 2))  # Parseval


def test_mean_is_shell_zero_and_channels_add():
    x = np.arange(8) / 8
    u = np.stack([np.full(8, 3.0), np.sin(2 * np.pi * x)])  # (C, x): constant 3 and sin(2πx)
    k, e = energy_spectrum(u, 1)
    np.testing.assert_allclose(e, [9.0, 0.5, 0.0, 0.0, 0.0], atol=1e-12)  # shells 0..4 (|k| <= N/2)
    with pytest.raises(WorkbenchError, match="dims=3"):
        energy_spectrum(u, 3)
