"""PIMRL models and baselines: shapes, periodicity, streaming == batched, known-physics parts
against core.physics, spectral and ConvLSTM layers against hand-written math, checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.errors import WorkbenchError
from core.pimrl import ABLATIONS, MODELS, DataMeta, build_model, load_checkpoint, save_checkpoint
from core.pimrl.micro import MicroCell, MicroConfig

GRIDS = {1: (32,), 2: (16, 16), 3: (8, 8, 8)}


def meta_for(ndim: int, channels: int = 2, system: str = "synthetic") -> DataMeta:
    n = GRIDS[ndim]
    dx = tuple(0.1 * (i + 1) for i in range(ndim))  # anisotropic on purpose
    return DataMeta(system, ndim, channels, n, dx, 0.001, 3, 0.003, fields=("u", "v")[:channels])


def make(name: str, meta: DataMeta):
    # a synthetic system has no physical parameters: give the micro cell its diffusion guess
    d = (0.01,) * meta.channels
    extra = {"micro.diffusion": d} if name in ("pimrl", "pimrl_nomp", "macro") else {}
    extra = {"diffusion": d} if name in ("percnn", "micro") else extra
    torch.manual_seed(0)
    return build_model(name, meta, **extra)


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("name", MODELS + ABLATIONS)
def test_shapes_streaming_and_periodicity(name, ndim):
    meta = meta_for(ndim)
    model = make(name, meta).eval()
    u0 = torch.randn(2, meta.channels, *meta.n)
    steps = 5 if name.startswith("pimrl") else 3  # PIMRL: two cycles (micro, 3 macro, micro)
    with torch.no_grad():
        out = model(u0, steps)
        assert out.shape == (2, steps, meta.channels, *meta.n)
        assert torch.isfinite(out).all()
        state, frames = model.start(u0), []
        for _ in range(steps):
            frame, state = model.advance(state)
            frames.append(frame)
        assert torch.equal(torch.stack(frames, 1), out)
        # periodic padding: shifting the input shifts the output (by 4 and 8 along different axes:
        # multiples of the macro encoder's stride, the only shifts a strided grid can follow exactly)
        shifts = (4, 8, 4)[:ndim]
        rolled = model(torch.roll(u0, shifts, dims=tuple(range(2, 2 + ndim))), steps)
        want = torch.roll(out, shifts, dims=tuple(range(3, 3 + ndim)))
        torch.testing.assert_close(rolled, want, atol=2e-5, rtol=1e-4)
        assert not torch.allclose(out[:, 0], u0)  # it does something


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_micro_fixed_stencil_is_core_physics_laplacian(ndim):
    from core.physics import laplacian

    meta = meta_for(ndim)
    cell = MicroCell(meta, MicroConfig(diffusion=(0.01, 0.02)))
    u = np.random.default_rng(ndim).standard_normal((2, meta.channels, *meta.n))
    want = laplacian(u, meta.dx, axes=tuple(range(2, 2 + ndim)))
    got = cell.laplacian(torch.as_tensor(u, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4 * np.abs(want).max())
    assert not any(p.requires_grad for n, p in cell.named_buffers())  # the stencil is not learned


def test_micro_step_is_forward_euler_on_known_terms():
    from core.physics import laplacian

    meta = meta_for(2)
    cell = MicroCell(meta, MicroConfig(diffusion=(0.01, 0.02), substeps=2)).double()
    with torch.no_grad():  # switch the unknown (Π-block) term off: F(u) = D Δu exactly
        cell.mix.weight.zero_()
    u = np.random.default_rng(0).standard_normal((1, 2, *meta.n))
    want, h = u.copy(), meta.dt_fine / 2
    for _ in range(2):
        want = want + h * np.array([0.01, 0.02])[None, :, None, None] * laplacian(want, meta.dx, (2, 3))
    got = cell.step(torch.as_tensor(u)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)  # stencil stored in float32


def test_micro_diffusion_guess_and_substeps_from_the_system():
    meta = DataMeta("fhn2d", 2, 2, (64, 64), (1.0, 1.0), 0.002, 10, 0.02, preset="cpu", fields=("u", "v"))
    cell = MicroCell(meta, MicroConfig(guess_factor=0.5))
    torch.testing.assert_close(cell.diffusion, torch.tensor([0.5, 50.0]))  # half of D_u = 1, D_v = 100
    lam = 2 * (16 / 3)  # 4th-order Laplacian symbol max, 2 axes, dx = 1
    assert cell.substeps == math.ceil(0.002 * 50.0 * lam)
    kdv = DataMeta("kdv1d", 1, 1, (64,), (0.5,), 0.04, 5, 0.2, fields=("u",))
    assert not MicroCell(kdv, MicroConfig()).has_diffusion  # KdV: no known diffusion term


def test_spectral_conv_matches_a_numpy_dft():
    from core.baselines.fno import SpectralConv

    torch.manual_seed(0)
    layer = SpectralConv(2, 3, (8, 8), modes=2).double()
    v = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    spec = np.fft.rfft2(v.numpy())  # (1, 3, 8, 5)
    w = layer.weight.detach().numpy()
    w = w[..., 0] + 1j * w[..., 1]  # (3, 3, 4, 2): rows 0,1 and 6,7 of the full axis; cols 0,1
    out_spec = np.zeros_like(spec)
    rows = [0, 1, 6, 7]
    for a, r in enumerate(rows):
        for c in range(2):
            out_spec[0, :, r, c] = spec[0, :, r, c] @ w[:, :, a, c]
    want = np.fft.irfft2(out_spec, s=(8, 8))
    np.testing.assert_allclose(layer(v).detach().numpy(), want, atol=1e-12)
    # frequencies above `modes` are removed entirely
    x = torch.arange(8, dtype=torch.float64)
    high = torch.cos(2 * math.pi * 3 * x / 8)[None, None, None, :].expand(1, 3, 8, 8)
    assert layer(high.contiguous()).abs().max() < 1e-12


def test_convlstm_cell_follows_the_lstm_equations():
    from core.pimrl.macro import ConvLSTMCell

    torch.manual_seed(1)
    cell = ConvLSTMCell(1, 2, 3, 3).double()
    x, h, c = (torch.randn(1, n, 10, dtype=torch.float64) for n in (2, 3, 3))
    xh = torch.cat([x, h], 1)
    gates = torch.nn.functional.conv1d(torch.nn.functional.pad(xh, (1, 1), mode="circular"),
                                       cell.gates.weight, cell.gates.bias)
    i, f, o, g = gates[:, 0:3], gates[:, 3:6], gates[:, 6:9], gates[:, 9:12]
    c_want = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_want = torch.sigmoid(o) * torch.tanh(c_want)
    h_got, c_got = cell(x, h, c)
    torch.testing.assert_close(c_got, c_want)
    torch.testing.assert_close(h_got, h_want)


def test_pimrl_cycle_uses_micro_then_macro():
    meta = meta_for(1)
    model = make("pimrl", meta).eval()
    model = build_model("pimrl", meta, config=model.config, cycle=3)
    u0 = torch.randn(1, 2, 32)
    with torch.no_grad():
        out = model(u0, 4)
        micro1 = model.micro.coarse_step(u0)
        torch.testing.assert_close(out[:, 0], micro1)  # step 1: micro
        torch.testing.assert_close(out[:, 3], model.micro.coarse_step(out[:, 2]))  # step 4: micro again
        h, c = model.macro.absorb(micro1, *model.macro.zero_state(u0))  # message passing
        torch.testing.assert_close(out[:, 1], model.macro.step(micro1, h, c)[0])
        nomp = build_model("pimrl_nomp", meta, config=model.config, message_passing=False)
        nomp.load_state_dict(model.state_dict())
        assert not torch.allclose(nomp(u0, 2)[:, 1], out[:, 1])


def test_registry_and_config_errors():
    meta = meta_for(2)
    with pytest.raises(WorkbenchError, match="unknown model 'transformer'; known: pimrl, percnn"):
        build_model("transformer", meta)
    with pytest.raises(WorkbenchError, match="option of PIMRLConfig"):
        build_model("pimrl", meta, **{"micro.diffusion": (0.1, 0.1), "cycles": 3})
    with pytest.raises(WorkbenchError, match="cycle N=0"):
        build_model("pimrl", meta, **{"micro.diffusion": (0.1, 0.1), "cycle": 0})
    with pytest.raises(WorkbenchError, match="not divisible by macro down=4"):
        build_model("convlstm", DataMeta("s", 2, 1, (18, 18), (1.0, 1.0), 0.1, 2, 0.2), down=4)
    with pytest.raises(WorkbenchError, match="dt_coarse"):
        DataMeta("s", 1, 1, (16,), (1.0,), 0.1, 2, 0.5)
    with pytest.raises(WorkbenchError, match="expects frames of shape"):
        make("fno", meta)(torch.zeros(1, 3, 16, 16), 1)


@pytest.mark.parametrize("name", MODELS)
def test_checkpoint_round_trip_and_mismatch(name, tmp_path):
    meta = meta_for(2)
    model = make(name, meta).eval()
    path = save_checkpoint(tmp_path / f"{name}.pt", model, meta, {"iterations": 1}, [1.0, 0.5],
                           metrics={"rmse": 0.1})
    loaded, payload = load_checkpoint(path, expect=meta)
    assert payload["metrics"] == {"rmse": 0.1} and payload["history"] == [1.0, 0.5]
    u0 = torch.randn(2, 2, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(u0, 3), model(u0, 3))
    assert loaded.name == name and loaded.config == model.config
    other = DataMeta("synthetic", 2, 2, (32, 32), meta.dx, meta.dt_fine, meta.k, meta.dt_coarse)
    with pytest.raises(WorkbenchError, match=r"n=\(16, 16\) but the data has n=\(32, 32\)"):
        load_checkpoint(path, expect=other)
    with pytest.raises(WorkbenchError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WorkbenchError, match="cannot be read"):
        load_checkpoint(tmp_path / "junk.pt")
