"""Fixed-point arithmetic shared by the int8 reference and the C kernels (TFLite / gemmlowp / CMSIS-NN).

Every function here is integer-only at run time (numpy int64 holds int32 values so that an overflow
of an int32 assumption can be *detected* instead of silently wrapping). The only float code is in
the helpers that build constants at quantization time (`quantize_multiplier`, `softmax_lut`, ...).

Requantization of an int32 accumulator `acc` by a real factor `M` (0 < M < 2^31):

    M = m · 2^shift,  m ∈ [0.5, 1) stored as the Q31 integer  mult = round(m · 2^31)
    multiply_by_quantized_multiplier(acc, mult, shift)
        = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc · 2^max(shift, 0), mult),
                              max(−shift, 0))

exactly as TFLite's reference `MultiplyByQuantizedMultiplier` (the "double rounding" variant that
CMSIS-NN's `arm_nn_requantize` also implements). Rounding rules, which C must reproduce:

* SaturatingRoundingDoublingHighMul(a, b) = (a·b + nudge) / 2^31 with C truncating division,
  nudge = 2^30 if a·b ≥ 0 else 1 − 2^30; saturates to 2^31 − 1 only for a = b = −2^31.
  Ties therefore round towards +∞ (+0.5 → 1, −0.5 → 0, −1.5 → −1): NOT away from zero.
* RoundingDivideByPOT(x, e) = (x >> e) + (remainder > threshold), remainder = x & (2^e − 1),
  threshold = (2^e − 1) >> 1, plus 1 when x < 0: round to nearest, ties away from zero.
* The left shift `acc · 2^shift` (shift > 0, i.e. M ≥ 1) saturates to the int32 range. TFLite leaves
  that overflow undefined; saturating agrees with it wherever it is defined.
"""

from __future__ import annotations

import math

import numpy as np

from core.errors import WorkbenchError

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT8_MIN = -128
INT8_MAX = 127

#: softmax exp LUT entries are round(2^SOFTMAX_LUT_BITS · exp(−s·d)); LUT[0] = 2^16
SOFTMAX_LUT_BITS = 16
#: softmax reciprocal: R = ⌊2^SOFTMAX_RECIP_BITS / Σ LUT⌋ (one int64 division per row)
SOFTMAX_RECIP_BITS = 46
#: softmax output quantization is fixed (TFLite convention): scale 1/256, zero point −128
SOFTMAX_OUT_SCALE = 1.0 / 256.0
SOFTMAX_OUT_ZP = -128
#: layernorm: normalized value (x − mean)/σ is held in Q`LN_NORM_FRAC_BITS` (int32)
LN_NORM_FRAC_BITS = 10
#: layernorm reciprocal: inv = ⌊2^LN_RECIP_BITS / σ_D⌋ (int64)
LN_RECIP_BITS = 40
#: TFLite's left shift of the two inputs of `add` (their offset-corrected values fit in 9 bits)
ADD_LEFT_SHIFT = 20


def _as_i64(x: np.ndarray | int) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def check_int32(x: np.ndarray, what: str) -> np.ndarray:
    """Raise if any value of the int64 array `x` leaves the int32 range (an accumulator overflow)."""
    x = _as_i64(x)
    if x.size and (x.min() < INT32_MIN or x.max() > INT32_MAX):
        raise WorkbenchError(f"{what} overflows int32 (range [{int(x.min())}, {int(x.max())}]); "
                             "the int8 kernels accumulate in int32, so scales or sizes must be reduced")
    return x


def round_half_away(v: float) -> int:
    """C's `round()` / TfLiteRound: nearest integer, ties away from zero (Python's round() is banker's)."""
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite `QuantizeMultiplier`: real ≥ 0 -> (Q31 multiplier, shift) with real ≈ mult·2^(shift−31).

    frexp gives real = q·2^shift with q ∈ [0.5, 1); mult = round(q·2^31) (ties away from zero); when
    rounding reaches 2^31 it is halved and shift incremented. real = 0 -> (0, 0); shift < −31 ->
    (0, 0) (everything would be shifted out); shift > 30 -> (2^31 − 1, 30).
    """
    if not math.isfinite(real) or real < 0:
        raise WorkbenchError(f"requantization multiplier {real!r} must be a finite number >= 0")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return INT32_MAX, 30
    return int(q_fixed), int(shift)


def quantize_multipliers(reals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`quantize_multiplier` element-wise: returns (mult int32 array, shift int32 array)."""
    pairs = [quantize_multiplier(float(r)) for r in np.ravel(reals)]
    mult = np.array([p[0] for p in pairs], dtype=np.int32).reshape(np.shape(reals))
    shift = np.array([p[1] for p in pairs], dtype=np.int32).reshape(np.shape(reals))
    return mult, shift


def saturating_rounding_doubling_high_mul(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """gemmlowp `SaturatingRoundingDoublingHighMul` (ARM VQRDMULH) on int32 values, element-wise.

    Returns round(a·b / 2^31) with ties towards +∞, computed as (a·b + nudge) / 2^31 with truncating
    division, nudge = 2^30 for a·b ≥ 0 else 1 − 2^30; the single overflow a = b = −2^31 gives 2^31 − 1.
    """
    a, b = _as_i64(a), _as_i64(b)
    ab = a * b  # |ab| ≤ 2^62: exact in int64
    v = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(v >= 0, v >> 31, -((-v) >> 31))  # C division truncates towards zero
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, INT32_MAX, high).astype(np.int64)


def rounding_divide_by_pot(x: np.ndarray | int, exponent: np.ndarray | int) -> np.ndarray:
    """gemmlowp `RoundingDivideByPOT`: x / 2^exponent rounded to nearest, ties away from zero.

    exponent ∈ [0, 31]; result = (x >> e) + (remainder > threshold) with remainder = x & (2^e − 1),
    threshold = ((2^e − 1) >> 1) + (x < 0). `>>` is an arithmetic (floor) shift.
    """
    x, e = _as_i64(x), _as_i64(exponent)
    if e.size and (e.min() < 0 or e.max() > 31):
        raise WorkbenchError(f"rounding shift exponent must be in [0, 31], got "
                             f"[{int(e.min())}, {int(e.max())}]")
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: np.ndarray | int, mult: np.ndarray | int,
                                     shift: np.ndarray | int) -> np.ndarray:
    """TFLite `MultiplyByQuantizedMultiplier(x, mult, shift)` on int32 values (int64 array out).

    = RoundingDivideByPOT(SRDHM(sat32(x · 2^max(shift,0)), mult), max(−shift, 0)), where sat32
    clamps to [−2^31, 2^31 − 1]. `mult` and `shift` broadcast against `x` (per-channel: last axis).
    """
    x, m, s = _as_i64(x), _as_i64(mult), _as_i64(shift)
    check_int32(x, "requantization input")
    left = np.maximum(s, 0)
    right = np.maximum(-s, 0)
    shifted = np.clip(x << left, INT32_MIN, INT32_MAX)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, m), right)


def requantize(acc: np.ndarray, mult: np.ndarray | int, shift: np.ndarray | int, out_zp: int,
               act_min: int, act_max: int) -> np.ndarray:
    """int32 accumulator -> int8: clamp(MBQM(acc, mult, shift) + out_zp, act_min, act_max)."""
    y = multiply_by_quantized_multiplier(acc, mult, shift) + int(out_zp)
    return np.clip(y, act_min, act_max).astype(np.int8)


def isqrt_floor(v: np.ndarray) -> np.ndarray:
    """⌊√v⌋ for int64 v ≥ 0, exactly (Newton in Python ints via math.isqrt, element-wise).

    C may use any exact integer square root (e.g. the bit-by-bit method); the result is unique.
    """
    v = _as_i64(v)
    if v.size and v.min() < 0:
        raise WorkbenchError("integer square root of a negative value")
    flat = [math.isqrt(int(t)) for t in v.ravel()]
    return np.array(flat, dtype=np.int64).reshape(v.shape)


def activation_range(act: str, scale: float, zero_point: int) -> tuple[int, int]:
    """int8 clamp bounds that implement `act` ("none" | "relu" | "relu6") for output (scale, zp).

    relu: [max(−128, zp), 127]; relu6: [max(−128, zp), min(127, zp + round(6/scale))].
    """
    if act == "none":
        return INT8_MIN, INT8_MAX
    lo = max(INT8_MIN, int(zero_point))
    if act == "relu":
        return lo, INT8_MAX
    if act == "relu6":
        return lo, min(INT8_MAX, int(zero_point) + round_half_away(6.0 / scale))
    from core.errors import unknown

    raise unknown("activation", act, ("none", "relu", "relu6"))


def softmax_lut(input_scale: float) -> np.ndarray:
    """int32[256] exp table for `intref.softmax`: LUT[d] = round(2^16 · exp(−input_scale · d)).

    d = x_max − x ∈ [0, 255] is the distance of an int8 logit from its row's maximum (the input
    zero point cancels), so LUT[0] = 65536 and the table is non-increasing.
    """
    if not input_scale > 0:
        raise WorkbenchError(f"softmax input scale {input_scale!r} must be > 0")
    d = np.arange(256, dtype=np.float64)
    return np.floor(np.exp(-input_scale * d) * (1 << SOFTMAX_LUT_BITS) + 0.5).astype(np.int32)


def add_multipliers(a_scale: float, b_scale: float, out_scale: float) -> dict[str, int]:
    """TFLite int8 ADD parameters for `intref.add`: input and output (mult, shift) with left shift 20.

    twice_max = 2·max(s_a, s_b); input multipliers s_a/twice_max and s_b/twice_max (< 1); output
    multiplier twice_max / (2^20 · s_out).
    """
    twice_max = 2.0 * max(a_scale, b_scale)
    a_mult, a_shift = quantize_multiplier(a_scale / twice_max)
    b_mult, b_shift = quantize_multiplier(b_scale / twice_max)
    o_mult, o_shift = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * out_scale))
    return {"a_mult": a_mult, "a_shift": a_shift, "b_mult": b_mult, "b_shift": b_shift,
            "out_mult": o_mult, "out_shift": o_shift}


#: biases are kept within ±2^30 so that accumulator + bias stays far from int32 overflow
BIAS_LIMIT = float(1 << 30)


def single(mult_shift: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One (multiplier, shift) pair as the (1,) int32 arrays a per-tensor QOp holds."""
    return np.array([mult_shift[0]], dtype=np.int32), np.array([mult_shift[1]], dtype=np.int32)


def quantize_weights(w: np.ndarray, b: np.ndarray, s_in: float, per_channel: bool
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric int8 weights (per output channel or per tensor) and int32 bias.

    s_w = max|W|/127 over the channel (or tensor), raised where needed so |bias_q| ≤ 2^30; an
    all-zero channel (e.g. fully pruned) with zero bias gets s_w = 1.
    """
    axes = tuple(range(1, w.ndim))
    w_abs = np.abs(w).max(axis=axes) if per_channel else np.full(w.shape[0], np.abs(w).max())
    b_need = np.abs(b) / (s_in * BIAS_LIMIT)
    s_w = np.maximum(w_abs / 127.0, b_need if per_channel else np.full(w.shape[0], b_need.max()))
    s_w = np.where(s_w > 0, s_w, 1.0)
    shape = (-1,) + (1,) * (w.ndim - 1)
    wq = np.clip(np.round(w / s_w.reshape(shape)), -127, 127).astype(np.int8)
    bq = np.round(b / (s_in * s_w)).astype(np.int32)
    return wq, bq, s_w
