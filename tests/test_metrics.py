"""core.metrics against values computed by hand on tiny arrays."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from core import metrics
from core.errors import WorkbenchError

T1 = np.array([[1.0, 2, 3], [4, 5, 6]])  # a 2x3 field


def _pair():
    """(sample=1, time=3, C=1, 2, 3): step 1 one wrong cell, step 2 affine 2q+1, step 3 negated."""
    target = np.stack([T1, T1, T1])[None, :, None]
    p1 = T1.copy()
    p1[1, 2] = 8.0
    pred = np.stack([p1, 2 * T1 + 1, -T1])[None, :, None]
    return pred, target


def test_rmse_mae_rel_l2_by_hand():
    pred, target = _pair()
    m = metrics.per_step(pred, target, dt=0.5)
    # step 1: one cell off by 2 among 6 -> mean sq 4/6, mean abs 2/6, ||q||^2 = 1+4+9+16+25+36 = 91
    # step 2: error q+1 -> squares 4,9,16,25,36,49 (sum 139), abs sum 2+..+7 = 27, ||e|| = sqrt(139)
    # step 3: error -2q -> sq sum 4*91, abs sum 2*21 = 42
    np.testing.assert_allclose(m.rmse.values[0], [np.sqrt(4 / 6), np.sqrt(139 / 6), np.sqrt(4 * 91 / 6)])
    np.testing.assert_allclose(m.mae.values[0], [2 / 6, 27 / 6, 42 / 6])
    np.testing.assert_allclose(m.rel_l2.values[0], [2 / np.sqrt(91), np.sqrt(139 / 91), 2.0])


def test_corr_by_hand():
    pred, target = _pair()
    c = metrics.corr(pred, target, dt=0.5).values[0]
    # step 1: q - 3.5 = (-2.5, -1.5, -0.5, 0.5, 1.5, 2.5), p = (1,2,3,4,5,8) with mean 23/6,
    # cov sum = 135/6 = 22.5, sum dq^2 = 17.5, sum dp^2 = 1110/36
    assert c[0] == pytest.approx(22.5 / np.sqrt(17.5 * 1110 / 36), rel=1e-12)
    assert c[1] == pytest.approx(1.0)
    assert c[2] == pytest.approx(-1.0)


def test_time_coordinate_starts_after_the_given_frame():
    pred, target = _pair()
    m = metrics.per_step(pred, target, dt=0.5)
    assert m.sizes == {"sample": 1, "time": 3}
    np.testing.assert_allclose(m.time.values, [0.5, 1.0, 1.5])  # steps 1..T, never t=0
    np.testing.assert_array_equal(m.step.values, [1, 2, 3])


def test_two_fields_pooled_and_by_field():
    q = np.stack([T1, 10 * T1])  # (C=2, 2, 3)
    p = np.stack([T1 + 1, -10 * T1])  # field 0 shifted (corr 1, err 1), field 1 negated (corr -1)
    pred, target = p[None, None], q[None, None]
    pooled = metrics.per_step(pred, target, dt=1.0)
    per = metrics.per_step(pred, target, dt=1.0, fields=["u", "v"], by_field=True)
    # field 1 error is 20*T1: squares 400*(1+4+...+36) = 400*91
    np.testing.assert_allclose(per.rmse.sel(field="u").values, [[1.0]])
    np.testing.assert_allclose(per.rmse.sel(field="v").values, [[np.sqrt(400 * 91 / 6)]])
    np.testing.assert_allclose(pooled.rmse.values, [[np.sqrt((6 + 400 * 91) / 12)]])
    np.testing.assert_allclose(per.corr.values[0, 0], [1.0, -1.0])
    assert pooled.corr.values[0, 0] == pytest.approx(0.0)  # mean of +1 and -1, not a pooled Pearson


def test_zero_variance_and_nonfinite_correlation():
    flat = np.ones((1, 2, 1, 2, 3))
    pred = flat.copy()
    pred[0, 1] = 2.0  # constant but different from the truth
    c = metrics.corr(pred, flat).values[0]
    np.testing.assert_array_equal(c, [1.0, 0.0])
    bad = np.stack([T1, T1])[None, :, None].copy()
    bad[0, 1, 0, 0, 0] = np.nan
    c = metrics.corr(bad, np.stack([T1, T1])[None, :, None]).values[0]
    assert c[0] == pytest.approx(1.0) and np.isnan(c[1])


def _corr(values, dt=0.5):
    values = np.atleast_2d(values)
    times = dt * np.arange(1, values.shape[1] + 1)
    return xr.DataArray(values, dims=("sample", "time"), coords={"time": times})


def test_hct_first_crossing_by_hand():
    # sample 0 falls at step 3 (recovers at 4: not counted) -> 2 steps * 0.5; sample 1 never -> 4 * 0.5;
    # sample 2 fails at step 1 -> 0; sample 3 NaN at step 2 -> 0.5
    c = _corr([[0.99, 0.9, 0.7, 0.95], [0.9, 0.85, 0.81, 0.8], [0.5, 0.9, 0.9, 0.9], [0.9, np.nan, 0.9, 0.9]])
    np.testing.assert_allclose(metrics.hct(c).values, [1.0, 2.0, 0.0, 0.5])
    np.testing.assert_allclose(metrics.hct(c, threshold=0.95).values, [0.5, 0.0, 0.0, 0.0])


def test_hct_rejects_bad_threshold():
    with pytest.raises(WorkbenchError, match="threshold"):
        metrics.hct(_corr([0.9]), threshold=1.5)


def test_summarize_aggregates_explicitly():
    # two samples, rmse per step (3, 4) and (0, 0): rollout RMSE sqrt((9+16)/2) and 0
    ds = xr.Dataset({
        "rmse": (("sample", "time"), [[3.0, 4.0], [0.0, 0.0]]),
        "mae": (("sample", "time"), [[1.0, 3.0], [0.0, 2.0]]),
        "rel_l2": (("sample", "time"), [[0.1, 0.3], [0.1, 0.5]]),
        "corr": (("sample", "time"), [[0.9, 0.7], [0.9, 0.9]]),
    }, coords={"time": [1.0, 2.0]})
    row = metrics.summarize(ds).iloc[0]
    r0 = np.sqrt(12.5)
    assert row.rmse == pytest.approx(r0 / 2)
    assert row.rmse_std == pytest.approx(np.std([r0, 0.0], ddof=0))
    assert row.mae == pytest.approx((2.0 + 1.0) / 2)
    assert row.hct == pytest.approx((1.0 + 2.0) / 2)
    assert row.final_rel_l2 == pytest.approx(0.4)


def test_band_mean_and_std():
    da = _corr([[1.0, 2.0], [3.0, 6.0]])
    b = metrics.band(da)
    np.testing.assert_allclose(b["mean"].values, [2.0, 4.0])
    np.testing.assert_allclose(b["std"].values, [1.0, 2.0])


def test_shape_mismatch_is_refused():
    with pytest.raises(WorkbenchError, match="differs"):
        metrics.rmse(np.zeros((1, 2, 1, 4)), np.zeros((1, 3, 1, 4)))
    with pytest.raises(WorkbenchError, match="dt"):
        metrics.rmse(np.zeros((1, 2, 1, 4)), np.zeros((1, 2, 1, 4)), dt=0.0)


def test_perturb_scales_with_field_std_and_is_seeded():
    rng = np.random.default_rng(1)
    u0 = np.stack([rng.standard_normal((64, 64)), 100 * rng.standard_normal((64, 64))])[None]  # (1,2,64,64)
    a, b = metrics.perturb(u0, 0.1, seed=3), metrics.perturb(u0, 0.1, seed=3)
    np.testing.assert_array_equal(a, b)
    noise = (a - u0)[0]
    np.testing.assert_allclose(noise.std(axis=(1, 2)) / u0[0].std(axis=(1, 2)), 0.1, rtol=0.05)
