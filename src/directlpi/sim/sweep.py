"""``directlpi sweep CONFIG.toml``: ``simulate`` over a Cartesian product of parameters.

The configuration (docs/simulate.md)::

    workload = "mixed"          # a built-in name or a workload file (default: mixed)
    duration = "5ms"            # simulated time of each point (default 10ms)
    seed = 0
    routes = ["direct-lpi", "mbi"]
    cpus = [4, 8]
    rates = [100000, 400000]    # MSIs per second
    [costs.default]             # cost models by name; an empty table: the shipped one
    [costs.slow-mmio.cpu]       # the same tables as a --costs file
    mmio_read_ns = 400

Every (route, cpus, rate, cost model) is one point, run in its own process: a local
process pool (``--executor local``, the default), or a Dask distributed cluster
(``--executor dask``: ``--scheduler ADDRESS``, or a LocalCluster started here).  The
distribution is theirs, not ours.  Results: one row per point, as ``sweep.csv`` and
``sweep.json`` in ``--out DIR``, and ``sweep_p99.png/.svg`` when matplotlib is there.
"""

from __future__ import annotations

import csv
import errno
import itertools
import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from directlpi.errors import DirectLPIError
from directlpi.sim.costs import CostsError, load_costs

COLUMNS = ("route", "cpus", "rate_per_s", "costs", "workload", "duration_ns", "seed",
           "p50_ns", "p99_ns", "p999_ns", "max_ns", "throughput_per_s", "msis_written",
           "handler_runs", "coalesced", "invariants_ok", "host_seconds")
_KEYS = {"workload", "duration", "seed", "routes", "cpus", "rates", "costs"}


class SweepError(DirectLPIError):
    """A sweep configuration that cannot be used (exit status 2)."""


@dataclass(frozen=True)
class SweepConfig:
    workload: str
    duration_ns: int
    seed: int
    routes: tuple[str, ...]
    cpus: tuple[int, ...]
    rates: tuple[float, ...]
    costs: dict[str, dict[str, Any]]

    def points(self) -> list[dict[str, Any]]:
        """Every point, in a stable order (routes, then CPUs, rates, cost models)."""
        return [{"index": i, "route": r, "cpus": c, "rate": rate, "costs_name": name,
                 "costs": self.costs[name], "workload": self.workload,
                 "duration_ns": self.duration_ns, "seed": self.seed}
                for i, (r, c, rate, name) in enumerate(itertools.product(
                    self.routes, self.cpus, self.rates, self.costs))]


def _list(data: dict[str, Any], key: str, kind: type, where: str) -> tuple[Any, ...]:
    value = data.get(key)
    if not isinstance(value, list) or not value:
        raise SweepError(f"{where}: {key}: a non-empty list", errno.EINVAL)
    for v in value:
        if isinstance(v, bool) or not isinstance(v, kind | int if kind is float else kind):
            raise SweepError(f"{where}: {key}: {v!r} is not a {kind.__name__}", errno.EINVAL)
    return tuple(value)


def parse_sweep(data: dict[str, Any], where: str = "sweep") -> SweepConfig:
    """A sweep from its dict form; :class:`SweepError` names the key."""
    from directlpi.sim.compare import parse_routes
    from directlpi.sim.workload import load_workload, parse_duration

    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise SweepError(f"{where}: unknown key {unknown[0]!r} (known: "
                         f"{', '.join(sorted(_KEYS))})", errno.EINVAL)
    routes = _list(data, "routes", str, where)
    try:
        parse_routes(",".join(routes))
    except DirectLPIError as exc:
        raise SweepError(f"{where}: {str(exc).replace('--routes', 'routes')}",
                         errno.EINVAL) from None
    cpus = _list(data, "cpus", int, where)
    if any(not 2 <= c <= 512 for c in cpus):
        raise SweepError(f"{where}: cpus: each 2..512", errno.EINVAL)
    rates = _list(data, "rates", float, where)
    if any(r <= 0 for r in rates):
        raise SweepError(f"{where}: rates: each more than 0", errno.EINVAL)
    workload = str(data.get("workload", "mixed"))
    try:
        load_workload(workload)
        duration = parse_duration(str(data.get("duration", "10ms")))
    except DirectLPIError as exc:
        raise SweepError(f"{where}: {exc}", exc.errno) from None
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SweepError(f"{where}: seed: an integer", errno.EINVAL)
    costs = data.get("costs", {"default": {}})
    if not isinstance(costs, dict) or not costs or \
            not all(isinstance(v, dict) for v in costs.values()):
        raise SweepError(f"{where}: costs: tables of cost models ([costs.NAME])",
                         errno.EINVAL)
    for name, body in costs.items():
        try:
            load_costs(overrides=body)
        except CostsError as exc:
            raise SweepError(f"{where}: costs.{name}: {exc}", errno.EINVAL) from None
    return SweepConfig(workload, duration, seed, routes, cpus, rates, costs)


def load_sweep(path: Path) -> SweepConfig:
    """Read and validate a sweep configuration (TOML)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SweepError(f"{path}: {exc.strerror}", exc.errno or errno.ENOENT) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SweepError(f"{path}: not valid TOML ({exc})", errno.EINVAL) from None
    return parse_sweep(data, str(path))


def run_point(point: dict[str, Any]) -> dict[str, Any]:
    """One point (in a worker process): its row of the table."""
    from directlpi.sim.costs import load_costs
    from directlpi.sim.timed import simulate

    res = simulate((point["route"],), point["workload"], rate=point["rate"],
                   duration_ns=point["duration_ns"], cpus=point["cpus"],
                   costs=load_costs(overrides=point["costs"]), seed=point["seed"])
    r = res["routes"][point["route"]]
    lat = r["latency_ns"]
    return {"index": point["index"], "route": point["route"], "cpus": point["cpus"],
            "rate_per_s": point["rate"], "costs": point["costs_name"],
            "workload": res["workload"], "duration_ns": point["duration_ns"],
            "seed": point["seed"], "p50_ns": lat["p50"], "p99_ns": lat["p99"],
            "p999_ns": lat["p999"], "max_ns": lat["max"],
            "throughput_per_s": r["throughput_per_s"], "msis_written": r["msis_written"],
            "handler_runs": r["handler_runs"], "coalesced": r["coalesced"],
            "invariants_ok": r["invariants"]["ok"], "host_seconds": r["host_seconds"]}


def run_sweep(config: SweepConfig, *, executor: str = "local", workers: int | None = None,
              scheduler: str | None = None, rows: list[dict[str, Any]] | None = None,
              progress: Callable[[], None] | None = None,
              dask_processes: bool = True) -> list[dict[str, Any]]:
    """Run every point; rows (appended to ``rows`` as they finish, so that a Ctrl-C keeps
    them) sorted by point at the end.  ``executor``: "local" or "dask";
    ``dask_processes``: the LocalCluster's workers are processes (False: threads of this
    process, what the tests use)."""
    out = rows if rows is not None else []
    points = config.points()
    try:
        if executor == "dask":
            _run_dask(points, workers, scheduler, out, progress, processes=dask_processes)
        else:
            _run_local(points, workers, out, progress)
    finally:
        out.sort(key=lambda r: r["index"])
    return out


def _run_local(points: list[dict[str, Any]], workers: int | None, out: list[dict[str, Any]],
               progress: Callable[[], None] | None) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # "spawn": a fresh interpreter per worker, whatever threads this process has.
    pool = ProcessPoolExecutor(max_workers=workers,
                               mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [pool.submit(run_point, p) for p in points]
        for f in as_completed(futures):
            out.append(f.result())
            if progress is not None:
                progress()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(points: list[dict[str, Any]], workers: int | None, scheduler: str | None,
              out: list[dict[str, Any]], progress: Callable[[], None] | None,
              *, processes: bool = True) -> None:
    import importlib

    try:
        # Imported by name: dask.distributed ships no type information.
        distributed: Any = importlib.import_module("distributed")
    except ImportError:
        raise DirectLPIError("--executor dask needs dask.distributed, the 'dask' extra: "
                             "pip install -e '.[dask]'", errno.ENOPKG) from None
    cluster = None
    if scheduler is None:
        cluster = distributed.LocalCluster(n_workers=workers or 2, threads_per_worker=1,
                               processes=processes, dashboard_address=None)
        client = distributed.Client(cluster)
    else:
        try:
            client = distributed.Client(scheduler, timeout=10)
        except OSError as exc:
            raise DirectLPIError(f"--scheduler {scheduler}: cannot connect ({exc})",
                                 errno.ECONNREFUSED) from None
    try:
        futures = client.map(run_point, points, pure=False)
        for f in distributed.as_completed(futures):
            out.append(f.result())
            if progress is not None:
                progress()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def write_results(rows: list[dict[str, Any]], directory: Path) -> list[Path]:
    """``sweep.csv`` and ``sweep.json`` (and the plot when matplotlib is there)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        csv_path, json_path = directory / "sweep.csv", directory / "sweep.json"
        with csv_path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
        json_path.write_text(json.dumps({"schema_version": 1, "columns": list(COLUMNS),
                                         "points": [{c: r[c] for c in COLUMNS}
                                                    for r in rows]}, indent=2) + "\n")
    except OSError as exc:
        raise DirectLPIError(f"--out {directory}: {exc.strerror}",
                             exc.errno or errno.EIO) from None
    out = [csv_path, json_path]
    if rows:
        try:
            from directlpi.sim import plots
            plots.require()
        except DirectLPIError:
            return out
        out += plots.sweep_plots(rows, directory)
    return out
