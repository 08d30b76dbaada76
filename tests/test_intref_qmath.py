"""Fixed-point requantization (core.tinyformer.qmath) against hand values and a scalar port of gemmlowp."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import WorkbenchError
from core.tinyformer import qmath
from core.tinyformer.qmath import INT32_MAX, INT32_MIN


def _trunc_div(a: int, b: int) -> int:
    """C integer division (truncates towards zero) on Python ints."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _srdhm_scalar(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul, line by line, with Python ints."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return _trunc_div(ab + nudge, 1 << 31)


def _rdbp_scalar(x: int, e: int) -> int:
    """gemmlowp RoundingDivideByPOT, line by line (x as int32 two's complement)."""
    mask = (1 << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if remainder > threshold else 0)


def _mbqm_scalar(x: int, m: int, s: int) -> int:
    left, right = max(s, 0), max(-s, 0)
    return _rdbp_scalar(_srdhm_scalar(max(min(x << left, INT32_MAX), INT32_MIN), m), right)


@pytest.mark.parametrize(("real", "expected"), [
    (0.5, (1 << 30, 0)), (0.25, (1 << 30, -1)), (1.0, (1 << 30, 1)), (0.75, (1610612736, 0)),
    (0.0, (0, 0)), (2.0 ** -40, (0, 0)), (1.0 - 2.0 ** -40, (1 << 30, 1)), (2.0 ** 40, (INT32_MAX, 30)),
    (0.1, (1717986918, -3)),   # 0.8·2^31 = 1717986918.4 -> rounds down
])
def test_quantize_multiplier_hand_values(real, expected):
    assert qmath.quantize_multiplier(real) == expected


def test_quantize_multiplier_rejects_negative_and_nan():
    with pytest.raises(WorkbenchError, match="multiplier"):
        qmath.quantize_multiplier(-0.5)
    with pytest.raises(WorkbenchError, match="multiplier"):
        qmath.quantize_multiplier(float("nan"))


@pytest.mark.parametrize(("a", "b", "expected"), [
    (INT32_MIN, INT32_MIN, INT32_MAX),           # the single saturating case
    (1 << 30, 1, 1),                             # +0.5 -> 1 (tie rounds up)
    (-(1 << 30), 1, 0),                          # -0.5 -> 0: ties go towards +inf, not away from zero
    (-3 * (1 << 29), 2, -1),                     # -1.5 -> -1
    (3 * (1 << 29), 2, 2),                       # +1.5 -> 2
    (-3 * (1 << 28), 2, -1),                     # -0.75 -> -1
    (INT32_MAX, INT32_MAX, INT32_MAX - 1),       # (2^31-1)^2 / 2^31 = 2^31 - 2 + 2^-31
    (INT32_MIN, INT32_MAX, -INT32_MAX),          # -2^31 + 1 exactly
    (1000, 1 << 30, 500),
])
def test_saturating_rounding_doubling_high_mul_edge_cases(a, b, expected):
    assert int(qmath.saturating_rounding_doubling_high_mul(a, b)) == expected
    assert _srdhm_scalar(a, b) == expected


@pytest.mark.parametrize(("x", "e", "expected"), [
    (5, 1, 3), (-5, 1, -3), (-4, 1, -2), (-6, 2, -2), (6, 2, 2), (-7, 2, -2), (-5, 2, -1), (7, 0, 7),
    (INT32_MIN, 31, -1), (INT32_MAX, 31, 1), (-(1 << 30), 31, -1), ((1 << 30) - 1, 31, 0),
])
def test_rounding_divide_by_pot_rounds_half_away_from_zero(x, e, expected):
    assert int(qmath.rounding_divide_by_pot(x, e)) == expected
    assert _rdbp_scalar(x, e) == expected


def test_rounding_divide_by_pot_rejects_bad_exponent():
    with pytest.raises(WorkbenchError, match="exponent"):
        qmath.rounding_divide_by_pot(3, 32)


@pytest.mark.parametrize(("x", "real", "expected"), [
    (1000, 0.5, 500), (-3, 0.5, -1), (-6, 0.25, -2), (100, 2.0, 200), (7, 1.0, 7),
    (1 << 30, 4.0, 1 << 30),  # 2^30·2^2 saturates to 2^31-1 before the Q31 multiply by 0.5
])
def test_multiply_by_quantized_multiplier_hand_values(x, real, expected):
    m, s = qmath.quantize_multiplier(real)
    assert int(qmath.multiply_by_quantized_multiplier(x, m, s)) == expected


def test_vectorized_matches_scalar_gemmlowp_port():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.integers(INT32_MIN, INT32_MAX, 3000, endpoint=True),
                        rng.integers(-70000, 70000, 3000), [INT32_MIN, INT32_MAX, 0, -1, 1]])
    m = rng.integers(1 << 30, INT32_MAX, x.size, endpoint=True)
    s = rng.integers(-31, 31, x.size)
    got = qmath.multiply_by_quantized_multiplier(x, m, s)
    want = [_mbqm_scalar(int(a), int(b), int(c)) for a, b, c in zip(x, m, s)]
    assert got.tolist() == want


def test_requantization_is_within_one_of_exact_product():
    rng = np.random.default_rng(2)
    x = rng.integers(-(1 << 24), 1 << 24, 2000)
    for real in (0.0003, 0.0171, 0.4, 0.93, 1.7):
        m, s = qmath.quantize_multiplier(real)
        got = qmath.multiply_by_quantized_multiplier(x, m, s)
        exact = x * (m * 2.0 ** (s - 31))
        assert np.max(np.abs(got - exact)) <= 1.0  # two roundings of at most 1/2 each


def test_overflowing_accumulator_is_detected():
    with pytest.raises(WorkbenchError, match="int32"):
        qmath.multiply_by_quantized_multiplier(np.array([1 << 31]), 1 << 30, 0)


def test_activation_ranges():
    assert qmath.activation_range("none", 0.1, 5) == (-128, 127)
    assert qmath.activation_range("relu", 0.1, 5) == (5, 127)
    assert qmath.activation_range("relu6", 0.1, -128) == (-128, -68)   # 6/0.1 = 60 steps above zp
    assert qmath.activation_range("relu6", 0.01, 0) == (0, 127)
    with pytest.raises(WorkbenchError, match="unknown activation"):
        qmath.activation_range("gelu", 0.1, 0)


def test_softmax_lut_and_isqrt():
    lut = qmath.softmax_lut(np.log(2.0))
    assert lut[:4].tolist() == [65536, 32768, 16384, 8192] and lut.dtype == np.int32
    roots = qmath.isqrt_floor(np.array([0, 1, 3, 4, 15, 16, (1 << 40) + 5]))
    assert roots.tolist() == [0, 1, 1, 2, 3, 4, 1 << 20]


def test_add_multipliers_tflite_hand_values():
    p = qmath.add_multipliers(1.0, 1.0, 1.0)
    assert (p["a_mult"], p["a_shift"]) == (1 << 30, 0)
    assert (p["out_mult"], p["out_shift"]) == (1 << 30, -18)   # 2 / 2^20 = 0.5·2^-18
