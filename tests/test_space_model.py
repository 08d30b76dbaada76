"""Search space and torch models: round trips, MACs vs torch's FLOP counter, params, weight sharing."""

from __future__ import annotations

import random

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from core.errors import WorkbenchError
from core.tinyformer import space
from core.tinyformer.graph import graph_of
from core.tinyformer.model import build, extract
from core.tinyformer.supernet import make_supernet

SMALL = space.SpaceConfig(name="small", resolution=16, ds_widths=(8, 12), mbv2_widths=(8, 12),
                          vit_dims=(8, 16), vit_mlp=(16, 24), last_widths=(16, 24), mbv2_depths=(1, 2),
                          vit_blocks=(1, 2))


@pytest.mark.parametrize("seed", range(6))
def test_arch_round_trip_and_membership(seed: int) -> None:
    arch = space.sample(SMALL, random.Random(seed))
    assert space.contains(SMALL, arch)
    assert space.arch_of(space.build(arch)) == arch
    child = space.mutate(SMALL, arch, random.Random(seed + 100), prob=0.5)
    assert space.contains(SMALL, child) and space.arch_of(build(child)) == child
    mate = space.crossover(arch, space.sample(SMALL, random.Random(seed + 7)), random.Random(seed))
    assert space.contains(SMALL, mate)


@pytest.mark.parametrize("seed", range(4))
def test_macs_match_torch_flop_counter(seed: int) -> None:
    """torch counts 2 FLOPs per multiply-accumulate of conv, linear and (b)mm: 2·MACs exactly."""
    arch = space.sample(SMALL, random.Random(seed))
    arch["pool"] = ("avg", "attn")[seed % 2]
    torch.manual_seed(seed)
    model = build(arch).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, 16, 16))
    g = graph_of(arch)
    assert counter.get_total_flops() == 2 * g.macs
    # torch parameters = deployed params (BN folded into one bias) + the BN scale of every conv
    bn_scales = sum(op.bias_count for op in g.ops if op.kind in ("conv2d", "dwconv2d"))
    assert sum(p.numel() for p in model.parameters()) == g.params + bn_scales


def test_subnet_of_supernet_equals_extracted_model() -> None:
    torch.manual_seed(0)
    sup = make_supernet(SMALL)
    for m in sup.modules():  # non-trivial BN statistics, so slicing them is tested too
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    sup.eval()
    x = torch.randn(2, 3, 16, 16)
    for seed in range(4):
        arch = space.sample(SMALL, random.Random(seed))
        sub = extract(sup, arch).eval()
        torch.testing.assert_close(sub(x), sup(x, arch), rtol=1e-5, atol=1e-5)
        w = sub.blocks[0].project.conv.weight
        torch.testing.assert_close(w, sup.blocks[0].project.conv.weight[: w.shape[0], : w.shape[1]])
    big = space.extreme(SMALL, largest=True)
    assert sum(p.numel() for p in sup.parameters()) >= sum(p.numel() for p in build(big).parameters())


def test_space_validation() -> None:
    with pytest.raises(WorkbenchError, match="divisible"):
        space.SpaceConfig(vit_dims=(36,), vit_heads=(8,))
    with pytest.raises(WorkbenchError, match="n_downsample"):
        space.SpaceConfig(n_downsample=3)
    with pytest.raises(WorkbenchError, match="unknown"):
        space.SpaceConfig(pools=("max",))
    assert space.SpaceConfig(width_mult=0.5).ds_out == (8, 12)
