"""Independent jobs in this process or on a Dask cluster: one place for `--scheduler`.

    for i, result in run_jobs(fn, items, scheduler):   # scheduler: None | "local" | "tcp://..." | Client
        ...

`scheduler=None` runs `fn(item)` here, in order. Otherwise each item is one Dask task: "local" starts
a `LocalCluster` (2 worker processes, 1 thread each) for the call, "tcp://host:port" connects to a
running scheduler, a `distributed.Client` is used as is. Results arrive as they complete, each with
its index, so callers that store results by index get the same output as the in-process run
(provided `fn` is deterministic: it must not depend on the worker, e.g. set its own thread count).
`shared` is sent to the workers once (scattered) and passed as `fn(item, shared)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from core.errors import WorkbenchError


def check_scheduler(scheduler: Any) -> None:
    """Refuse a scheduler `run_jobs` cannot use, before anything runs."""
    if scheduler is None or scheduler == "local" or (isinstance(scheduler, str) and "://" in scheduler):
        return
    if type(scheduler).__name__ == "Client" and type(scheduler).__module__.startswith("distributed"):
        return
    raise WorkbenchError(f"scheduler={scheduler!r} is not understood; use a 'tcp://host:port' "
                         "address, 'local', a distributed.Client, or None for in-process")


@contextmanager
def dask_client(scheduler: Any) -> Iterator[Any]:
    """A `distributed.Client` for `scheduler` ("local", an address, or a Client); closes what it opened."""
    check_scheduler(scheduler)
    if scheduler is None:
        raise WorkbenchError("dask_client needs a scheduler ('local', 'tcp://host:port' or a Client)")
    from distributed import Client, LocalCluster

    owned: list = []
    try:
        if isinstance(scheduler, Client):
            client = scheduler
        elif scheduler == "local":
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
            owned += [client, cluster]
        else:
            try:
                client = Client(scheduler, timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise WorkbenchError(f"cannot reach the Dask scheduler {scheduler!r} ({exc}); start one "
                                     "(dask scheduler) or omit --scheduler to run in-process") from exc
            owned.append(client)
        yield client
    finally:
        for obj in owned:
            obj.close()


def run_jobs(fn: Callable[..., Any], items: Sequence[Any], scheduler: Any = None,
             shared: Any = None) -> Iterator[tuple[int, Any]]:
    """(index, fn(item[, shared])) for every item: in order here, or as completed on Dask."""
    check_scheduler(scheduler)
    args = () if shared is None else (shared,)
    if scheduler is None:
        for i, item in enumerate(items):
            yield i, fn(item, *args)
        return
    from distributed import as_completed

    with dask_client(scheduler) as client:
        if shared is not None:
            args = (client.scatter(shared, broadcast=True),)
        futures = [client.submit(fn, item, *args, pure=False) for item in items]
        index = {f.key: i for i, f in enumerate(futures)}
        for fut in as_completed(futures):
            result = fut.result()
            fut.release()  # the cluster may forget it: the caller keeps it
            yield index[fut.key], result
