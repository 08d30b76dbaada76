"""int8 accuracy of a small model trained on the offline dataset (shapes10) stays within 2 points of
its float accuracy, and the two models agree on most images."""

from __future__ import annotations

import pytest
import torch

from core.tinyformer import quant
from core.tinyformer.data import get_dataset, resize
from core.tinyformer.model import build

#: a small candidate at 16×16 (8×8 = 64 tokens after the conv+pool tokenizer): trains in seconds
ARCH = {"resolution": 16, "classes": 10, "downsample": [{"kind": "conv_pool", "out": 16}],
        "mbv2": {"out": 16, "expand": [2]}, "vit": [{"dim": 16, "heads": 2, "mlp": 32, "layers": 1}],
        "last": 32, "pool": "avg"}


def train_small(n_train: int = 4000, epochs: int = 6, seed: int = 0) -> torch.nn.Module:
    """AdamW + one-cycle on the first n_train shapes10 training images, resized to 16×16."""
    torch.manual_seed(seed)
    x, y = get_dataset("shapes10", "train", n=n_train).tensors()
    x = resize(x, ARCH["resolution"])
    model = build(ARCH)
    opt = torch.optim.AdamW(model.parameters(), 5e-3, weight_decay=1e-4)
    steps = epochs * (n_train // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 5e-3, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n_train, generator=g)
        for i in range(0, n_train - 63, 64):
            idx = perm[i:i + 64]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained():
    # one thread: on a shared 2-core machine, OpenMP threads fighting for cores slow training 10×
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield train_small()
    finally:
        torch.set_num_threads(threads)


def test_int8_accuracy_within_two_points_of_float(trained):
    xc, yc = get_dataset("shapes10", "train", n=256).tensors()
    xc = resize(xc, ARCH["resolution"])
    qm = quant.quantize(trained, ARCH, [(xc[i:i + 64], yc[i:i + 64]) for i in range(0, 256, 64)])
    x, y = get_dataset("shapes10", "test", n=1000).tensors()
    x = resize(x, ARCH["resolution"])
    ev = quant.evaluate_int8(qm, [(x[i:i + 250], y[i:i + 250]) for i in range(0, 1000, 250)], model=trained)
    assert ev.n == 1000
    assert ev.float_accuracy > 0.4                      # the model did learn (chance is 0.1)
    assert abs(ev.float_accuracy - ev.int8_accuracy) <= 0.02
    assert ev.agreement >= 0.9
