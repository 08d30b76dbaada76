"""Blockwise run-length sparse weight format (TinyFormer's SparseEngine format), byte-exact.

Rows and blocks. A weight tensor of `Op.weight_shape` (conv `(out, kh, kw, in)`, depthwise
`(C, kh, kw, 1)`, linear `(out, in)`) has one row per output channel: the row is the channel's
weights flattened in C order, i.e. `(kh, kw, in)`. A row is cut into consecutive blocks of `b`
values. For conv and linear, b ∈ {1, 2, 4} must divide `in`, so a block is b input channels at one
kernel position; for depthwise (in == 1), b ∈ {1, 3} must divide `kw`, so b = 3 is one kernel row.
A block is kept when any of its b values is non-zero.

Byte layout of one layer (`encode`), rows in order 0 … out−1, for each row:

    count   : uint16, little-endian — number of entries in this row (fillers included)
    entries : `count` times
        gap   : 1 byte holding (gap − 128) as int8 (so gap 0 is byte 0x80, gap 255 is 0x7F)
        value : b bytes, the block's int8 weights in row order

`gap` is the number of skipped (all-zero) blocks between the previous entry of this row (or the
row start) and this entry, so the entry's block index is `prev_index + 1 + gap` (with
`prev_index = −1` at the row start). A run of g ≥ 256 zero blocks is bridged by filler entries: a
filler is an entry with gap 255 whose b values are all zero, i.e. an explicitly stored zero block;
after ⌊g/256⌋ fillers the remaining gap g mod 256 is < 256. Decoding needs no special case: a filler
just writes zeros. A row with no kept block has count 0.

Size: Σ_rows (2 + (kept_r + fillers_r)·(1 + b)) bytes — (1 + 1/b) bytes per kept weight plus 2
bytes per row. `storage_bytes` picks the dense int8 layout (numel bytes) when it is not larger.
"""

from __future__ import annotations

import functools

import numpy as np

from core.errors import WorkbenchError

GAP_BIAS = 128
MAX_GAP = 255


def check_block(shape: tuple[int, ...], b: int) -> None:
    """Raise `WorkbenchError` unless block size `b` is valid for a weight of `shape`."""
    if len(shape) not in (2, 4) or min(shape) < 1:
        raise WorkbenchError(
            f"weight shape {tuple(shape)} is not a conv (out, kh, kw, in) or linear (out, in) shape"
        )
    depthwise = len(shape) == 4 and shape[3] == 1
    if depthwise:
        if b not in (1, 3) or shape[2] % b:
            raise WorkbenchError(
                f"block size {b} is not allowed for depthwise weights {tuple(shape)}; "
                "use 1 or 3 (3 needs a kernel width divisible by 3)"
            )
    elif b not in (1, 2, 4) or shape[-1] % b:
        raise WorkbenchError(
            f"block size {b} is not allowed for weights {tuple(shape)}; use 1, 2 or 4 "
            f"dividing the input channels ({shape[-1]})"
        )


@functools.lru_cache(maxsize=4096)
def block_size_choices(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The block sizes `check_block` accepts for `shape` (pure; cached)."""
    out = []
    for b in (1, 2, 3, 4):
        try:
            check_block(shape, b)
            out.append(b)
        except WorkbenchError:
            pass
    return tuple(out)


def block_mask(w: np.ndarray, b: int) -> np.ndarray:
    """(out, blocks_per_row) bool: True where a block holds a non-zero (or True) value."""
    check_block(w.shape, b)
    rows = np.asarray(w).reshape(w.shape[0], -1, b)  # (out, row_len / b, b)
    return np.any(rows != 0, axis=2)


def _row_entries(kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For one row's kept-block indices: (positions of entries incl. fillers, their gaps)."""
    pos, gaps, prev = [], [], -1
    for idx in kept.tolist():
        gap = idx - prev - 1
        while gap > MAX_GAP:  # filler: an explicit zero block 256 blocks further on
            prev += MAX_GAP + 1
            pos.append(prev)
            gaps.append(MAX_GAP)
            gap -= MAX_GAP + 1
        pos.append(idx)
        gaps.append(gap)
        prev = idx
    return np.asarray(pos, dtype=np.int64), np.asarray(gaps, dtype=np.int64)


def encoded_size(mask_or_w: np.ndarray, b: int) -> int:
    """Exact byte length of `encode(w, b)` from the weights or any array with the same zero pattern.

    Equals Σ_rows 2 + (kept_r + fillers_r)(1 + b); fillers_r = Σ over gaps g of ⌊g/256⌋.
    """
    mask = block_mask(np.asarray(mask_or_w), b)
    rows, cols = np.nonzero(mask)  # row-major order: kept blocks row by row, ascending
    prev = np.empty_like(cols)
    prev[1:] = cols[:-1]
    first = np.ones(cols.size, dtype=bool)
    first[1:] = rows[1:] != rows[:-1]
    prev[first] = -1
    fillers = int(np.sum((cols - prev - 1) // (MAX_GAP + 1)))
    return 2 * mask.shape[0] + (cols.size + fillers) * (1 + b)


def encode(w_int8: np.ndarray, b: int) -> bytes:
    """The blockwise run-length encoding of int8 weights (layout in the module docstring)."""
    w = np.asarray(w_int8)
    if w.dtype != np.int8:
        raise WorkbenchError(f"encode needs int8 weights, got dtype {w.dtype}")
    check_block(w.shape, b)
    blocks = w.reshape(w.shape[0], -1, b)  # (out, blocks_per_row, b)
    mask = np.any(blocks != 0, axis=2)
    out = bytearray()
    for r in range(w.shape[0]):
        pos, gaps = _row_entries(np.flatnonzero(mask[r]))
        if pos.size > 0xFFFF:
            raise WorkbenchError(f"row {r} has {pos.size} entries; the format allows at most 65535")
        out += int(pos.size).to_bytes(2, "little")
        if pos.size:
            entries = np.empty((pos.size, 1 + b), dtype=np.uint8)
            entries[:, 0] = (gaps - GAP_BIAS).astype(np.int8).view(np.uint8)
            entries[:, 1:] = blocks[r, pos].view(np.uint8)
            out += entries.tobytes()
    return bytes(out)


def decode(data: bytes, shape: tuple[int, ...], b: int) -> np.ndarray:
    """Inverse of `encode`: int8 weights of `shape`. Malformed data raises `WorkbenchError`."""
    check_block(tuple(shape), b)
    n_blocks = int(np.prod(shape[1:])) // b
    rows = np.zeros((shape[0], n_blocks, b), dtype=np.int8)
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    at = 0
    for r in range(shape[0]):
        if at + 2 > buf.size:
            raise WorkbenchError(f"sparse data ends inside the header of row {r} (byte {at} of {buf.size})")
        count = int(buf[at]) | (int(buf[at + 1]) << 8)
        at += 2
        end = at + count * (1 + b)
        if end > buf.size:
            raise WorkbenchError(f"sparse data ends inside row {r}: needs {end} bytes, has {buf.size}")
        entries = buf[at:end].reshape(count, 1 + b)
        idx = np.cumsum(entries[:, 0].view(np.int8).astype(np.int64) + GAP_BIAS + 1) - 1
        if count and idx[-1] >= n_blocks:
            raise WorkbenchError(f"row {r} addresses block {idx[-1]} but has only {n_blocks} blocks")
        rows[r, idx] = entries[:, 1:].view(np.int8)
        at = end
    if at != buf.size:
        raise WorkbenchError(f"sparse data has {buf.size - at} trailing bytes after {shape[0]} rows")
    return rows.reshape(shape)


def storage_bytes(mask_or_w: np.ndarray, b: int) -> tuple[str, int]:
    """("sparse", encoded_size) or ("dense", numel), whichever is smaller (dense on ties)."""
    dense = int(np.asarray(mask_or_w).size)
    size = encoded_size(mask_or_w, b)
    return ("sparse", size) if size < dense else ("dense", dense)
