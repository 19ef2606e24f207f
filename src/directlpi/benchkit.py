"""Measurement helpers for ``bench/`` (run by ``directlpi bench``).

A benchmark module in ``bench/`` defines ``run(quick: bool) -> list[Figure]``.
Figures are medians of repeated runs; each has a stable key that ``directlpi
bench --json`` prints.  Nothing here is used by the test suite: timings never
become assertions.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import math
import statistics
import time
from collections.abc import Callable, Iterator
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
    return [f for _done, _total, _name, found in iter_benchmarks(bench_dir, quick, only)
            for f in found]


def iter_benchmarks(bench_dir: Path, quick: bool = False,
                    only: Callable[[str], bool] | None = None
                    ) -> Iterator[tuple[int, int, str, list[Figure]]]:
    """:func:`run_benchmarks` one module at a time: (modules done, modules selected, the
    module's name, its figures) after each, for progress and for keeping what was
    measured when the user stops."""
    if not bench_dir.is_dir():
        raise DirectLPIError(
            f"no benchmark directory at {bench_dir}: `directlpi bench` runs from a source "
            "checkout (pip install -e .); pass --bench-dir to point elsewhere", 2)
    paths = [p for p in sorted(bench_dir.glob("bench_*.py")) if only is None or only(p.stem)]
    for done, path in enumerate(paths, 1):
        spec = importlib.util.spec_from_file_location(f"directlpi_bench_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise DirectLPIError(f"cannot load benchmark module {path}", 2)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield done, len(paths), path.stem, list(module.run(quick))


def load_baseline(path: Path) -> dict[str, float]:
    """A saved ``directlpi bench --json`` run: ``{key: value}``.  Raises DirectLPIError
    (exit status 2) naming the file and what is wrong with it."""
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise DirectLPIError(f"--compare {path}: {e.strerror}", e.errno or errno.EIO) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DirectLPIError(f"--compare {path}: not JSON ({e})", errno.EINVAL) from None
    if not isinstance(data, dict) or not data:
        raise DirectLPIError(f"--compare {path}: not a {{key: value}} object as "
                             "`directlpi bench --json` prints", errno.EINVAL)
    bad = [k for k, v in data.items() if isinstance(v, bool)
           or not isinstance(v, int | float) or not math.isfinite(v)]
    if bad:
        raise DirectLPIError(f"--compare {path}: key {bad[0]!r} is not a finite number",
                             errno.EINVAL)
    return {k: float(v) for k, v in data.items()}


def higher_is_better(unit: str) -> bool | None:
    """Whether a bigger value of a figure in ``unit`` is an improvement: rates yes; times
    and counts of accesses or bytes no; None otherwise (a ``ratio`` key may be a cost
    ratio or a rate ratio: its doc line says which)."""
    if unit.endswith("/s"):
        return True
    if unit in ("s", "ms", "ns", "us", "accesses", "bytes"):
        return False
    return None


@dataclass(frozen=True)
class Comparison:
    """One figure against its baseline (``ratio`` = now / then)."""

    figure: Figure
    baseline: float | None
    ratio: float | None
    verdict: str
    """"better", "worse", "same" (within 5%), "new" (not in the baseline), or "" (a unit
    whose direction is not known)."""


def compare_figures(figures: list[Figure], baseline: dict[str, float],
                    tolerance: float = 0.05) -> tuple[list[Comparison], list[str]]:
    """Each figure against ``baseline``, and the baseline keys this run did not measure."""
    out: list[Comparison] = []
    for f in figures:
        old = baseline.get(f.key)
        if old is None:
            out.append(Comparison(f, None, None, "new"))
            continue
        ratio = f.value / old if old else (1.0 if f.value == old else math.inf)
        up = higher_is_better(f.unit)
        if abs(ratio - 1) <= tolerance:
            verdict = "same"
        elif up is None:
            verdict = ""
        else:
            verdict = "better" if (ratio > 1) == up else "worse"
        out.append(Comparison(f, old, ratio, verdict))
    measured = {f.key for f in figures}
    return out, sorted(k for k in baseline if k not in measured)
