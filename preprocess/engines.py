"""Run shard tasks on loky (joblib), a dask `distributed` cluster or ray; results as tasks finish.

--jobs: loky = worker processes; ray = tasks in flight; dask = workers of the local cluster started
when no --scheduler is given, ignored (with a note) on an existing cluster, whose size decides.
Callers pass absolute paths: tasks may run in another working directory.
"""
from __future__ import annotations

import sys
from typing import Callable, Iterator

BACKENDS = ("loky", "dask", "ray")
EXTRAS = {"dask": ("distributed", "dask"), "ray": ("ray", "ray")}


def check_backend(backend: str) -> None:
    """Refuse a backend whose package is missing before any work starts."""
    import importlib.util

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend in EXTRAS and importlib.util.find_spec(EXTRAS[backend][0]) is None:
        raise ValueError(f"--backend {backend} needs the [{EXTRAS[backend][1]}] extra "
                         f"(pip install 'spixwalk[{EXTRAS[backend][1]}]')")


def run_tasks(fn: Callable, tasks: list[dict], jobs: int, backend: str, scheduler: str | None = None) -> Iterator:
    """Yield fn(**task) for every task, in completion order."""
    if backend == "dask":
        yield from _dask(fn, tasks, jobs, scheduler)
    elif backend == "ray":
        yield from _ray(fn, tasks, jobs, scheduler)
    else:
        from joblib import Parallel, delayed

        yield from Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")(
            delayed(fn)(**t) for t in tasks)


def _call(fn, task):
    return fn(**task)


def _dask(fn, tasks, jobs, scheduler):
    from dask.distributed import Client, LocalCluster, as_completed

    if scheduler:
        print(f"note: --jobs {jobs} ignored on dask cluster {scheduler}: its workers decide", file=sys.stderr)
        client, cluster = Client(scheduler), None
    else:
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        futures = [client.submit(_call, fn, t, pure=False) for t in tasks]
        for f in as_completed(futures):
            yield f.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _ray(fn, tasks, jobs, scheduler):
    import ray

    started = not ray.is_initialized()
    if started:
        kw = {"address": scheduler} if scheduler else {"num_cpus": jobs, "include_dashboard": False}
        ray.init(log_to_driver=False, **kw)
    remote = ray.remote(num_cpus=1)(_call)
    try:
        pending, queue = [], list(tasks)
        while queue or pending:
            while queue and len(pending) < jobs:  # --jobs tasks in flight
                pending.append(remote.remote(fn, queue.pop(0)))
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started:
            ray.shutdown()
