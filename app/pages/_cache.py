"""Results that are the same for every browser session, computed once and kept on disk.

`disk_cached(kind, inputs, compute)` returns `compute()`'s xarray Dataset, stored as JSON under
`<data cache>/app/<kind>-<hash of inputs>.json` (written atomically), so the first session pays and
every later one -- and a restarted server -- reads it back in milliseconds. `inputs` must hold
everything the result depends on (settings, dataset key, checkpoint content hashes: `file_hash`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xarray as xr

from core.io import cache_dir, to_jsonable, write_json_atomic

log = logging.getLogger("workbench.app.cache")

#: bump when what the pages store changes shape
VERSION = 1


def file_hash(path: Path) -> str:
    """SHA-256 of a file's content ('' when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return ""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_path(kind: str, inputs: dict[str, Any]) -> Path:
    blob = json.dumps(to_jsonable({"version": VERSION, **inputs}), sort_keys=True)
    return cache_dir() / "app" / f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:20]}.json"


def disk_cached(kind: str, inputs: dict[str, Any],
                compute: Callable[[], xr.Dataset]) -> tuple[xr.Dataset, bool]:
    """(result, True if it came from the disk cache)."""
    path = cache_path(kind, inputs)
    if path.is_file():
        try:
            return xr.Dataset.from_dict(json.loads(path.read_text())), True
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable cache entry %s", path, exc_info=True)
    result = compute()
    try:
        write_json_atomic(path, {**result.to_dict(data="list"), "inputs": to_jsonable(inputs)})
    except OSError:  # a read-only cache: still show the result
        log.warning("could not write the cache entry %s", path, exc_info=True)
    return result, False
