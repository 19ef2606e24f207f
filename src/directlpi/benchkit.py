"""Measurement helpers for ``bench/`` (run by ``directlpi bench``).

A benchmark module in ``bench/`` defines ``run(quick: bool) -> list[Figure]``.
Figures are medians of repeated runs; each has a stable key that ``directlpi
bench --json`` prints.  Nothing here is used by the test suite: timings never
become assertions.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from directlpi.errors import DirectLPIError


@dataclass(frozen=True)
class Figure:
    """One measured figure."""

    key: str
    value: float
    unit: str
    what: str


def median_rate(op: Callable[[int], object], n: int, repeats: int = 7) -> float:
    """Median over ``repeats`` runs of ``n / seconds`` for ``op(n)`` (n operations)."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        op(n)
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def median_seconds(fn: Callable[[], object], repeats: int = 5) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def default_bench_dir() -> Path:
    """``bench/`` of the source checkout this package was installed from (editable install)."""
    return Path(__file__).resolve().parents[2] / "bench"


def run_benchmarks(bench_dir: Path, quick: bool = False,
                   only: Callable[[str], bool] | None = None) -> list[Figure]:
    """Import every ``bench_*.py`` in ``bench_dir`` and collect its figures.

    Raises DirectLPIError (ENOENT) when the directory is missing.
    """
    if not bench_dir.is_dir():
        raise DirectLPIError(
            f"no benchmark directory at {bench_dir}: `directlpi bench` runs from a source "
            "checkout (pip install -e .); pass --bench-dir to point elsewhere", 2)
    figures: list[Figure] = []
    for path in sorted(bench_dir.glob("bench_*.py")):
        if only is not None and not only(path.stem):
            continue
        spec = importlib.util.spec_from_file_location(f"directlpi_bench_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise DirectLPIError(f"cannot load benchmark module {path}", 2)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        figures.extend(module.run(quick))
    return figures
