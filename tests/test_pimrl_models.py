"""PIMRL models and baselines: shapes, periodicity, streaming == batched, known-physics parts
against core.physics, spectral and ConvLSTM layers against hand-written math, checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.errors import WorkbenchError
from core.pimrl import DataMeta, save_checkpoint
from core.pimrl.micro import D3_4TH, MicroCell, MicroConfig
from core.surrogates import ABLATIONS, MODELS, build_model, load_checkpoint

GRIDS = {1: (32,), 2: (16, 16), 3: (8, 8, 8)}


def meta_for(ndim: int, channels: int = 2, system: str = "synthetic") -> DataMeta:
    n = GRIDS[ndim]
    dx = tuple(0.1 * (i + 1) for i in range(ndim))  # anisotropic on purpose
    return DataMeta(system, ndim, channels, n, dx, 0.001, 3, 0.003, fields=("u", "v")[:channels])


def make(name: str, meta: DataMeta):
    # a synthetic system has no physical parameters: give the micro cell its diffusivities
    d = ((0.01,) * meta.channels,)
    extra = {"micro.physical": d} if name in ("pimrl", "pimrl_nomp", "macro") else {}
    extra = {"physical": d} if name in ("percnn", "micro") else extra
    torch.manual_seed(0)
    return build_model(name, meta, **extra)


def _micro_coarse(cell, u):
    """k fine steps of δt, each `substeps` Euler or RK4 steps of F = cell.rhs, written out."""
    h = cell.meta.dt_fine / cell.substeps
    for _ in range(cell.meta.k * cell.substeps):
        if cell.config.integrator == "euler":
            u = u + h * cell.rhs(u)
        else:
            k1 = cell.rhs(u)
            k2 = cell.rhs(u + 0.5 * h * k1)
            k3 = cell.rhs(u + 0.5 * h * k2)
            k4 = cell.rhs(u + h * k3)
            u = u + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
    return u


def _absorb(mac, u, h, c):
    return mac.cell(mac.encoder(u), h, c)  # (h, c) <- ConvLSTM(E(u), h, c)


def _zero_latent(mac, u):
    z = torch.zeros(u.shape[0], mac.config.latent, *(n // mac.config.down for n in mac.meta.n))
    return z, z.clone()


def reference_rollout(model, u0, steps):
    """The update equations of each model (its docstring, the PIMRL paper's cycle) written out from
    its parts -- micro F, macro E / ConvLSTM / D, the FNO increment -- without start/advance/forward."""
    out, u = [], u0
    if hasattr(model, "increment"):  # FNO: u_{j+1} = u_j + G(u_j)
        for _ in range(steps):
            u = u + model.increment(u)
            out.append(u)
    elif hasattr(model.config, "cycle"):  # PIMRL and its macro / no-message-passing ablations
        cfg, mic, mac = model.config, model.micro, model.macro
        if mac is not None:
            h, c = _absorb(mac, u0, *_zero_latent(mac, u0))
        for j in range(steps):
            if mic is not None and (mac is None or j % cfg.cycle == 0):  # micro step, every N
                u = _micro_coarse(mic, u)
                if mac is not None and cfg.message_passing:
                    h, c = _absorb(mac, u, h, c)
            else:  # macro step: u + D(h), then the latent state absorbs the new frame
                u = u + mac.decoder(h)
                h, c = _absorb(mac, u, h, c)
            out.append(u)
    elif hasattr(model, "macro"):  # ConvLSTM baseline: the macro module alone
        mac = model.macro
        h, c = _absorb(mac, u0, *_zero_latent(mac, u0))
        for _ in range(steps):
            u = u + mac.decoder(h)
            h, c = _absorb(mac, u, h, c)
            out.append(u)
    else:  # PeRCNN / micro ablation: k micro steps per frame
        for _ in range(steps):
            u = _micro_coarse(model.micro, u)
            out.append(u)
    return torch.stack(out, 1)  # (B, T, C, *n)


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
        # independent truth: the equations written out from the model's parts
        torch.testing.assert_close(out, reference_rollout(model, u0, steps), atol=1e-6, rtol=1e-5)
        state, frames = model.start(u0), []  # the streaming face (what the app uses)
        for _ in range(steps):
            frame, state = model.advance(state)
            frames.append(frame)
        torch.testing.assert_close(torch.stack(frames, 1), out, atol=0, rtol=0)
        # periodic padding: shifting the input shifts the output (by 4 and 8 along different axes:
        # multiples of the macro encoder's stride, the only shifts a strided grid can follow exactly)
        shifts = (4, 8, 4)[:ndim]
        rolled = model(torch.roll(u0, shifts, dims=tuple(range(2, 2 + ndim))), steps)
        want = torch.roll(out, shifts, dims=tuple(range(3, 3 + ndim)))
        torch.testing.assert_close(rolled, want, atol=2e-5, rtol=1e-4)
        assert not torch.allclose(out[:, 0], u0)  # it does something
        # and the shift test can fail: a shift that is not a multiple of the stride is not followed
        if name in ("convlstm", "pimrl"):
            odd = model(torch.roll(u0, 1, dims=2), steps)
            assert not torch.allclose(odd, torch.roll(out, 1, dims=3), atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_micro_fixed_stencils_are_core_physics_stencils(ndim):
    from core.physics import gradient, laplacian

    meta = meta_for(ndim)
    cell = MicroCell(meta, MicroConfig(features="grad", physical=((0.01, 0.02),))).double()
    u = np.random.default_rng(ndim).standard_normal((2, meta.channels, *meta.n))
    got = cell.stencils(torch.as_tensor(u)).numpy()  # (B, C, S, *n): d0..d{ndim-1}, diffusion
    assert cell.names == [f"d{a}" for a in range(ndim)] + ["diffusion"]
    for a in range(ndim):
        want = gradient(u, meta.dx[a], axis=2 + a)
        np.testing.assert_allclose(got[:, :, a], want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    want = laplacian(u, meta.dx, axes=tuple(range(2, 2 + ndim)))
    np.testing.assert_allclose(got[:, :, ndim], want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    assert not any(p.requires_grad for _, p in cell.named_buffers())  # the stencils are not learned


def test_dispersion_stencil_is_fourth_order_minus_uxxx():
    errors = []
    for n in (32, 64):
        meta = DataMeta("synthetic", 1, 1, (n,), (2 * math.pi / n,), 0.001, 1, 0.001, fields=("u",))
        config = MicroConfig(known=("dispersion",), integrator="rk4", physical=((1.0,),))
        cell = MicroCell(meta, config).double()
        x = np.arange(n) * meta.dx[0]
        u = torch.as_tensor(np.sin(3 * x))[None, None]
        got = cell.stencils(u)[0, 0, 0].numpy()
        errors.append(np.abs(got - 27 * np.cos(3 * x)).max())  # −∂³ₓ sin 3x = 27 cos 3x
    assert math.log2(errors[0] / errors[1]) == pytest.approx(4.0, abs=0.15)
    assert D3_4TH.sum() == 0 and np.allclose(D3_4TH, -D3_4TH[::-1])  # consistent and antisymmetric


def test_micro_steps_are_euler_and_rk4_on_the_known_terms():
    from core.physics import laplacian

    meta = meta_for(2)
    coef = np.array([0.01, 0.02])[None, :, None, None]
    f = lambda v: coef * laplacian(v, meta.dx, (2, 3))  # noqa: E731
    u = np.random.default_rng(0).standard_normal((1, 2, *meta.n))
    for integrator in ("euler", "rk4"):
        cell = MicroCell(meta, MicroConfig(integrator=integrator, substeps=2, guess_factor=1.0,
                                           physical=((0.01, 0.02),))).double()
        with torch.no_grad():  # switch the unknown (Π-block) term off: F(u) = D Δu exactly
            cell.mix.weight.zero_()
        want, h = u.copy(), meta.dt_fine / 2
        for _ in range(2):
            if integrator == "euler":
                want = want + h * f(want)
            else:
                k1 = f(want)
                k2 = f(want + h / 2 * k1)
                k3 = f(want + h / 2 * k2)
                k4 = f(want + h * k3)
                want = want + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        got = cell.step(torch.as_tensor(u)).detach().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)  # stencil stored in float32


def test_known_coefficients_are_bounded_and_substeps_keep_them_stable():
    meta = DataMeta("fhn2d", 2, 2, (64, 64), (1.0, 1.0), 0.002, 10, 0.02, preset="cpu", fields=("u", "v"))
    cell = MicroCell(meta, MicroConfig(guess_factor=0.5, bound=2.0))
    torch.testing.assert_close(cell.diffusion, torch.tensor([0.5, 50.0]))  # half of D_u = 1, D_v = 100
    with torch.no_grad():  # however far θ runs, 0 < D < 2 × the physical value
        cell.theta.fill_(50.0)
        assert torch.all(cell.diffusion <= torch.tensor([2.0, 200.0]))
        cell.theta.fill_(-50.0)
        assert torch.all(cell.diffusion >= 0)
    # Euler at c_max = 2·D_v = 200: stable iff h·200·λ_max <= 2 with λ_max = 2·16/3 (dx = 1)
    lam = 2 * (16 / 3)
    assert cell.substeps == math.ceil(0.002 * 200.0 * lam / 2)
    # the checkerboard mode (the Laplacian's largest eigenvalue) at c_max: stable with `substeps`,
    # growing with one fewer
    with torch.no_grad():
        cell.theta.fill_(50.0)
        cell.mix.weight.zero_()
        cell.mix.bias.zero_()
        check = torch.tensor([[(-1.0) ** (i + j) for j in range(64)] for i in range(64)])
        u0 = torch.stack([check, check])[None]
        assert cell.step(u0).abs().max() <= 1.0 + 1e-5
        cell.substeps -= 1
        assert cell.step(u0).abs().max() > 1.0
    kdv = DataMeta("kdv1d", 1, 1, (64,), (0.5,), 0.04, 5, 0.2, fields=("u",))
    assert "diffusion" not in MicroCell(kdv, MicroConfig(known=(), integrator="rk4")).names
    with pytest.raises(WorkbenchError, match="needs integrator='rk4'"):
        MicroConfig(known=("dispersion",), integrator="euler")


def test_micro_cell_with_the_true_terms_reproduces_the_reference_solver():
    """Gray–Scott written into the cell by hand (known diffusion + a 1×1 Π-block holding u·v² and the
    linear terms) steps like core.physics' RK4 solver: the prior can represent the truth exactly."""
    from core.physics import get_system, simulate

    system = get_system("grayscott2d", "cpu", n=(32, 32))
    p = system.params()
    meta = DataMeta("grayscott2d", 2, 2, (32, 32), system.dx, system.dt, 4, 4 * system.dt, preset="cpu",
                    fields=("u", "v"))
    cell = MicroCell(meta, MicroConfig(hidden=4, branches=3, integrator="rk4", guess_factor=1.0)).double()
    with torch.no_grad():
        for b in cell.branches:
            b.weight.zero_()
            b.bias.zero_()
        w = [b.weight[:, :, 0, 0] for b in cell.branches]
        w[0][0, 0] = w[1][0, 1] = w[2][0, 1] = 1.0  # hidden 0 = u·v·v
        w[0][1, 0] = w[0][2, 1] = 1.0  # hidden 1 = u, hidden 2 = v (times the bias 1 of the others)
        for b in cell.branches[1:]:
            b.bias[1] = b.bias[2] = 1.0
        for b in cell.branches:
            b.bias[3] = 1.0  # hidden 3 = 1
        cell.mix.weight.zero_()
        cell.mix.bias.zero_()
        m = cell.mix.weight[:, :, 0, 0]
        m[0, 0], m[0, 1], m[0, 3] = -1.0, -p["f"], p["f"]  # −u v² − f u + f
        m[1, 0], m[1, 2] = 1.0, -(p["f"] + p["k"])  # u v² − (f + k) v
    torch.testing.assert_close(cell.diffusion.double(), torch.tensor([p["Du"], p["Dv"]], dtype=torch.float64))
    u0 = system.initial_condition(np.random.default_rng(0))
    ref = simulate(system, u0, 40, record_every=4)  # (11, C, *n) RK4 at the solver's dt
    u = torch.as_tensor(u0)[None]
    assert cell.substeps == 1
    for j in range(1, 11):
        u = cell.coarse_step(u)
        np.testing.assert_allclose(u[0].detach().numpy(), ref[j], atol=1e-6)


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


def test_pimrl_cycle_uses_micro_then_macro_and_absorbs_every_frame_once():
    meta = meta_for(1)
    model = make("pimrl", meta).eval()
    model = build_model("pimrl", meta, config=model.config, cycle=3)
    u0 = torch.randn(1, 2, 32)
    mac = model.macro
    with torch.no_grad():
        out = model(u0, 4)
        h, c = mac.absorb(u0, *mac.zero_state(u0))  # the latent state starts from u0, not from zeros
        u1 = model.micro.coarse_step(u0)
        torch.testing.assert_close(out[:, 0], u1)  # step 1: micro
        h, c = mac.absorb(u1, h, c)  # message passing: the micro output is absorbed once
        u2 = u1 + mac.decoder(h)
        torch.testing.assert_close(out[:, 1], u2)  # step 2: macro decodes from the state
        h, c = mac.absorb(u2, h, c)
        u3 = u2 + mac.decoder(h)
        torch.testing.assert_close(out[:, 2], u3)
        torch.testing.assert_close(out[:, 3], model.micro.coarse_step(u3))  # step 4: micro again
        nomp = build_model("pimrl_nomp", meta, config=model.config, message_passing=False)
        nomp.load_state_dict(model.state_dict())
        assert not torch.allclose(nomp(u0, 2)[:, 1], out[:, 1])


def test_registry_and_config_errors():
    meta = meta_for(2)
    with pytest.raises(WorkbenchError, match="unknown model 'transformer'; known: pimrl, percnn"):
        build_model("transformer", meta)
    with pytest.raises(WorkbenchError, match="option of PIMRLConfig"):
        build_model("pimrl", meta, **{"micro.physical": ((0.1, 0.1),), "cycles": 3})
    with pytest.raises(WorkbenchError, match="cycle N=0"):
        build_model("pimrl", meta, **{"micro.physical": ((0.1, 0.1),), "cycle": 0})
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


def test_garbled_checkpoint_metadata_is_one_sentence(tmp_path):
    meta = meta_for(2)
    model = make("convlstm", meta)
    path = save_checkpoint(tmp_path / "m.pt", model, meta, {}, [1.0])
    payload = torch.load(path, weights_only=True)
    for key, value in (("meta", None), ("model_config", "garbage"), ("state_dict", 3)):
        broken = dict(payload, **{key: value})
        torch.save(broken, tmp_path / "b.pt")
        with pytest.raises(WorkbenchError, match="missing or garbled metadata"):
            load_checkpoint(tmp_path / "b.pt")
    torch.save(dict(payload, meta=dict(payload["meta"], ndim="two")), tmp_path / "c.pt")
    with pytest.raises(WorkbenchError, match="missing or garbled metadata"):
        load_checkpoint(tmp_path / "c.pt")


def test_fit_scaling_centres_the_pi_block_inputs_and_scales_its_output():
    meta = meta_for(2)
    cell = MicroCell(meta, MicroConfig(features="grad", physical=((0.01, 0.02),))).double()
    gen = torch.Generator().manual_seed(0)
    before = 0.6 + 0.1 * torch.randn((8, meta.channels, *meta.n), generator=gen, dtype=torch.float64)
    before[:, 1] = 0.25  # a constant field: its scale stays 1, never 1/0
    after = before + 0.003 * torch.randn(before.shape, generator=gen, dtype=torch.float64)
    cell.fit_scaling(before, after, dt=0.5)
    feats = cell.features(before)
    scaled = (feats - cell.feat_shift.view(1, -1, 1, 1)) / cell.feat_scale.view(1, -1, 1, 1)
    axes = (0, 2, 3)
    torch.testing.assert_close(scaled.mean(dim=axes)[0], torch.tensor(0.0, dtype=torch.float64), atol=1e-12,
                               rtol=0)
    assert scaled.std(dim=axes)[0] == pytest.approx(1.0)
    assert cell.feat_scale[1] == 1.0 and cell.feat_shift[1] == pytest.approx(0.25)
    rate = (after - before) / 0.5
    assert cell.out_scale[0] == pytest.approx(float(rate[:, 0].std()))
    # the scaling is a reparametrisation: with the mix switched off only the known terms remain
    with torch.no_grad():
        cell.mix.weight.zero_()
        cell.mix.bias.zero_()
        known = cell.diffusion.view(1, -1, 1, 1) * cell.stencils(before)[:, :, -1]
        np.testing.assert_allclose(cell.rhs(before).numpy(), known.numpy())
