"""Where batch work runs: in this process, or as tasks on a Ray cluster.

A runner maps a function over a list of tasks. Each task is independent (a chunk of items, a
grid point, a model to fit), so the results are the same wherever it ran; the caller folds
them in as they come back (``on_result``), which is where progress is reported. Ray is
imported only when a cluster is asked for, so podrec works without it installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")
R = TypeVar("R")
OnResult = Callable[[int, Any], None]


class BatchError(RuntimeError):
    """Batch work that could not run, or tasks that failed after their retries."""


@runtime_checkable
class BatchRunner(Protocol):
    """Runs ``fn(task, *shared)`` for every task; the results in task order. ``shared``:
    large read-only inputs every task needs (a catalog, a fold), sent once rather than once
    per task. ``on_result(index, result)`` is called as each finishes; with ``keep`` False
    the results are not kept (the caller keeps what it needs there: a fitted model of a grid
    point that lost is dropped at once)."""

    distributed: bool  # True: tasks run in other processes (inputs must be picklable)
    workers: int  # how many tasks can run at once

    def map(self, fn: Callable[..., R], tasks: Sequence[Any], shared: Sequence[Any] = (),
            on_result: OnResult | None = None, what: str = "tasks", num_cpus: float | None = None,
            this_node: bool = False, keep: bool = True) -> list[R]: ...

    def close(self) -> None: ...


class InProcessRunner:
    """Every task in turn, in this process (no retries: an error stops the work)."""

    distributed = False
    workers = 1

    def map(self, fn: Callable[..., R], tasks: Sequence[Any], shared: Sequence[Any] = (),
            on_result: OnResult | None = None, what: str = "tasks", num_cpus: float | None = None,
            this_node: bool = False, keep: bool = True) -> list[R]:
        out = []
        for n, task in enumerate(tasks):
            result = fn(task, *shared)
            if on_result is not None:
                on_result(n, result)
            if keep:
                out.append(result)
        return out

    def close(self) -> None:
        pass


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BatchError("running on Ray needs the ray package: pip install 'podrec[ray]' "
                         "(or leave out --ray / ray.address to run in this process)") from None
    return ray


def _reason(exc: BaseException) -> str:
    """One line for a failed task: the original error, not Ray's wrapped traceback."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".rstrip(": ")


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail at once on a head that does not answer (Ray itself keeps trying for minutes)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise BatchError(f"--ray {address!r}: expected local, auto, host:port or "
                         "ray://host:port")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise BatchError(f"cannot reach a Ray cluster at {address!r} ({exc.strerror or exc}): "
                         "start one with `ray start --head`, or use --ray local") from None


@dataclass
class _Failure:
    index: int
    reason: str


class RayRunner:
    """Tasks on a Ray cluster, each retried ``max_retries`` times when its worker dies or it
    raises; results are folded in as they finish (``ray.wait``). Started with ``address``
    ``local`` (a cluster of this machine's cores, stopped on ``close``), ``auto`` (the
    cluster this machine belongs to), ``host:port`` or ``ray://host:port``; when Ray is
    already initialised in this process, that connection is used."""

    distributed = True

    def __init__(self, address: str = "local", max_retries: int = 3, num_cpus: int = 0,
                 task_cpus: float = 1.0) -> None:
        ray = _import_ray()
        self.address, self.max_retries, self.task_cpus = address, max_retries, task_cpus
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if address == "local":
                kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
            elif address != "auto":
                _check_reachable(address)
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise BatchError(f"cannot reach a Ray cluster at {address!r}: {_reason(exc)} "
                                 "(start one with `ray start --head`, or use --ray local)"
                                 ) from None
            self._started = True
        self.client = address.startswith("ray://") or os.environ.get(
            "RAY_ADDRESS", "").startswith("ray://")
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1) // max(task_cpus, 0.01)))
        # the most CPUs one task can get (on the largest node): a task asking for more waits
        self.node_cpus = max([float(n["Resources"].get("CPU", 0)) for n in ray.nodes()
                              if n.get("Alive")] or [0.0])
        self._remote: dict[Any, Any] = {}
        self._puts: dict[int, tuple[Any, Any]] = {}

    def put(self, obj: Any) -> Any:
        """``obj`` in the object store, once per runner (it is kept until ``close``)."""
        ray = _import_ray()
        held = self._puts.get(id(obj))
        if held is None or held[0] is not obj:
            held = self._puts[id(obj)] = (obj, ray.put(obj))
        return held[1]

    def map(self, fn: Callable[..., R], tasks: Sequence[Any], shared: Sequence[Any] = (),
            on_result: OnResult | None = None, what: str = "tasks", num_cpus: float | None = None,
            this_node: bool = False, keep: bool = True) -> list[R]:
        """``this_node``: run every task on the node of this process (a SQLite file is only
        there)."""
        ray = _import_ray()
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = ray.remote(fn)
        cpus = min(self.task_cpus if num_cpus is None else num_cpus, self.node_cpus or 1.0)
        options: dict[str, Any] = {"max_retries": self.max_retries, "retry_exceptions": True,
                                   "num_cpus": cpus}
        if this_node:
            if self.client:
                raise BatchError("a SQLite database is a file on this machine, and through a "
                                 "Ray client (ray://) the tasks run on the cluster's machines: "
                                 "use a PostgreSQL database_url they can all reach")
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            here = ray.get_runtime_context().get_node_id()
            free = [float(n["Resources"].get("CPU", 0)) for n in ray.nodes()
                    if n.get("NodeID") == here]
            if not free or free[0] <= 0:
                raise BatchError("a SQLite database is a file on this machine, and this Ray "
                                 "node offers no CPUs to tasks: use a PostgreSQL database_url "
                                 "the cluster can reach, or --ray local")
            options["num_cpus"] = min(cpus, free[0])
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(here, soft=False)
        refs = [self.put(obj) for obj in shared]
        pending = {remote.options(**options).remote(task, *refs): n
                   for n, task in enumerate(tasks)}
        results: list[Any] = [None] * len(tasks)
        failures: list[_Failure] = []
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    n = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - reported below, with the others
                        failures.append(_Failure(n, _reason(exc)))
                        continue
                    if on_result is not None:
                        on_result(n, result)
                    if keep:
                        results[n] = result
                    del result
        finally:
            for ref in pending:  # interrupted: stop what has not finished
                ray.cancel(ref, force=True)
        if failures:
            failures.sort(key=lambda f: f.index)
            first = failures[0]
            raise BatchError(f"{len(failures)} of {len(tasks)} {what} failed after "
                             f"{self.max_retries} retries (the others finished; a re-run "
                             f"skips what they stored): {what} {first.index}: {first.reason}")
        return results if keep else []

    def close(self) -> None:
        self._puts.clear()
        if self._started:
            _import_ray().shutdown()
            self._started = False


def make_runner(address: str | None, config: Any = None) -> BatchRunner:
    """The runner for ``address`` (``--ray``, else ``ray.address``): in this process when
    empty, else on Ray with the ``[ray]`` settings of ``config`` (a ``Config`` or ``RayConfig``)."""
    ray_cfg = getattr(config, "ray", config)
    address = (address if address is not None else getattr(ray_cfg, "address", "")).strip()
    if not address:
        return InProcessRunner()
    return RayRunner(address, max_retries=getattr(ray_cfg, "max_retries", 3),
                     num_cpus=getattr(ray_cfg, "num_cpus", 0),
                     task_cpus=getattr(ray_cfg, "task_cpus", 1.0))


def chunks(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` in consecutive chunks of ``size``."""
    size = max(1, size)
    return [list(items[i:i + size]) for i in range(0, len(items), size)]
