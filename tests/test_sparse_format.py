"""Blockwise run-length format: hand-made bytes, round trips, exact sizes, fillers, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import WorkbenchError
from core.tinyformer import sparse


def _random_sparse(rng: np.random.Generator, shape: tuple[int, ...], b: int, keep: float) -> np.ndarray:
    w = rng.integers(-128, 128, size=shape, dtype=np.int16).astype(np.int8)
    w[w == 0] = 1
    blocks = w.reshape(shape[0], -1, b)
    drop = rng.random(blocks.shape[:2]) > keep
    blocks[drop] = 0
    return blocks.reshape(shape)


def test_hand_made_bytes() -> None:
    w = np.array([[0, 0, 5, 0], [0, 0, 0, 0], [-3, 0, 0, 7]], dtype=np.int8)
    # row 0: 1 entry, gap 2 -> byte 2-128 = -126 = 0x82, value 5
    # row 1: 0 entries; row 2: gap 0 (0x80) value -3 (0xFD), then gap 2 (0x82) value 7
    expected = bytes([1, 0, 0x82, 5, 0, 0, 2, 0, 0x80, 0xFD, 0x82, 7])
    assert sparse.encode(w, 1) == expected
    assert sparse.encoded_size(w, 1) == len(expected)
    np.testing.assert_array_equal(sparse.decode(expected, w.shape, 1), w)


def test_block_of_two_keeps_the_zero_partner() -> None:
    w = np.array([[0, 0, 0, 9]], dtype=np.int8)  # blocks (0,0) (0,9): second kept, gap 1
    assert sparse.encode(w, 2) == bytes([1, 0, 0x81, 0, 9])


def test_fillers_bridge_long_gaps() -> None:
    w = np.zeros((2, 600), dtype=np.int8)
    w[0, 599] = 4  # gap 599 = 2 fillers (256 blocks each) + gap 87
    w[1, 255] = -1  # gap 255 fits one byte: no filler
    data = sparse.encode(w, 1)
    assert data[:2] == bytes([3, 0])
    assert data[2:8] == bytes([0x7F, 0, 0x7F, 0, (87 - 128) & 0xFF, 4])
    assert data[8:] == bytes([1, 0, 0x7F, 0xFF])
    assert sparse.encoded_size(w, 1) == len(data) == 2 + 3 * 2 + 2 + 2
    np.testing.assert_array_equal(sparse.decode(data, w.shape, 1), w)


@pytest.mark.parametrize("shape,b", [((8, 3, 3, 4), 1), ((8, 3, 3, 4), 2), ((8, 3, 3, 8), 4),
                                     ((16, 3, 3, 1), 3), ((16, 3, 3, 1), 1), ((12, 40), 4),
                                     ((5, 1, 1, 320), 1), ((3, 1200), 2)])
@pytest.mark.parametrize("keep", [0.0, 0.05, 0.5, 1.0])
def test_round_trip_and_exact_size(shape: tuple[int, ...], b: int, keep: float) -> None:
    rng = np.random.default_rng(hash((shape, b, keep)) % 2**32)
    w = _random_sparse(rng, shape, b, keep)
    data = sparse.encode(w, b)
    assert sparse.encoded_size(w, b) == len(data)
    assert sparse.encoded_size(w != 0, b) == len(data)  # a mask gives the same size
    np.testing.assert_array_equal(sparse.decode(data, shape, b), w)
    kept = int(sparse.block_mask(w, b).sum())
    assert len(data) >= 2 * shape[0] + kept * (1 + b)


def test_dense_fallback() -> None:
    dense = np.ones((4, 16), dtype=np.int8)
    assert sparse.storage_bytes(dense, 4) == ("dense", 64)
    very_sparse = np.zeros((4, 16), dtype=np.int8)
    very_sparse[0, 0] = 1
    assert sparse.storage_bytes(very_sparse, 4) == ("sparse", 4 * 2 + 5)


def test_block_choices() -> None:
    assert sparse.block_size_choices((8, 3, 3, 3)) == (1,)
    assert sparse.block_size_choices((8, 3, 3, 8)) == (1, 2, 4)
    assert sparse.block_size_choices((8, 3, 3, 1)) == (1, 3)
    assert sparse.block_size_choices((10, 6)) == (1, 2)


def test_bad_inputs() -> None:
    w = np.zeros((4, 6), dtype=np.int8)
    with pytest.raises(WorkbenchError, match="block size 4"):
        sparse.encode(w, 4)
    with pytest.raises(WorkbenchError, match="depthwise"):
        sparse.encode(np.zeros((4, 3, 3, 1), dtype=np.int8), 2)
    with pytest.raises(WorkbenchError, match="int8"):
        sparse.encode(w.astype(np.int16), 1)
    good = sparse.encode(np.eye(4, 6, dtype=np.int8), 1)
    with pytest.raises(WorkbenchError, match="ends inside"):
        sparse.decode(good[:-1], (4, 6), 1)
    with pytest.raises(WorkbenchError, match="trailing"):
        sparse.decode(good + b"\x00", (4, 6), 1)
    with pytest.raises(WorkbenchError, match="addresses block"):
        sparse.decode(bytes([1, 0, 0x90, 1]) + bytes(6), (4, 6), 1)
