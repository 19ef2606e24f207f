"""Figures for ``--plot DIR`` (matplotlib, Agg backend: no display needed).

* ``simulate``: ``latency_cdf.png/.svg`` -- the CDF of write-to-handler latency, one
  line per route; ``cpu_heatmap_<route>.png/.svg`` -- interrupts per CPU per time bin.
* ``compare``: ``compare_ops.png/.svg`` -- per operation, the MMIO accesses each route
  makes (every frame, reads and writes), as grouped bars.
* ``sweep``: ``sweep_p99.png/.svg`` -- p99 latency against the rate, one line per
  (route, CPUs, cost model).

matplotlib is the optional extra ``plot`` (``pip install 'directlpi[plot]'``;
``./bootstrap`` installs it).  Without it, :func:`require` raises a one-line error.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from directlpi.errors import DirectLPIError

HEATMAP_BINS = 50


def require() -> None:
    """Raise DirectLPIError (ENOPKG) unless matplotlib can be imported."""
    try:
        import matplotlib
    except ImportError:
        raise DirectLPIError("--plot needs matplotlib, the 'plot' extra: pip install -e "
                             "'.[plot]' (./bootstrap installs it)", errno.ENOPKG) from None
    matplotlib.use("Agg")


def _save(fig: Any, directory: Path, stem: str) -> list[Path]:
    import matplotlib.pyplot as plt

    try:
        directory.mkdir(parents=True, exist_ok=True)
        out = []
        for suffix in (".png", ".svg"):
            path = directory / f"{stem}{suffix}"
            fig.savefig(path, dpi=110, bbox_inches="tight",
                        metadata={"Date": None} if suffix == ".svg" else None)
            out.append(path)
        return out
    except OSError as exc:
        raise DirectLPIError(f"--plot {directory}: {exc.strerror}",
                             exc.errno or errno.EIO) from None
    finally:
        plt.close(fig)


def latency_cdf(routes: dict[str, list[int]], directory: Path,
                title: str = "MSI latency, device write to irq_handler_entry") -> list[Path]:
    """One CDF line per route from its latency samples (ns)."""
    require()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for route, samples in routes.items():
        if not samples:
            continue
        xs = sorted(samples)
        n = len(xs)
        ax.step(xs, [(i + 1) / n for i in range(n)], where="post", label=route)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ns, simulated)")
    ax.set_ylabel("fraction of MSIs")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return _save(fig, directory, "latency_cdf")


def cpu_heatmap(route: str, entries: Iterable[tuple[int, int]], cpus: int, duration_ns: int,
                directory: Path) -> list[Path]:
    """Interrupts per CPU per time bin (``HEATMAP_BINS`` bins over the duration)."""
    require()
    import matplotlib.pyplot as plt

    grid = [[0] * HEATMAP_BINS for _ in range(cpus)]
    width = max(1, duration_ns // HEATMAP_BINS)
    for t, cpu in entries:
        b = min(t // width, HEATMAP_BINS - 1)
        grid[cpu][b] += 1
    fig, ax = plt.subplots(figsize=(7, 0.4 * cpus + 1.6))
    im = ax.imshow(grid, aspect="auto", origin="lower", interpolation="nearest",
                   extent=(0, duration_ns / 1e6, -0.5, cpus - 0.5), cmap="viridis")
    ax.set_xlabel("simulated time (ms)")
    ax.set_ylabel("CPU")
    ax.set_yticks(range(cpus))
    ax.set_title(f"{route}: interrupts per CPU per {width / 1e3:g} us")
    fig.colorbar(im, ax=ax, label="handler runs")
    return _save(fig, directory, f"cpu_heatmap_{route}")


def simulate_plots(result: dict[str, Any], directory: Path) -> list[Path]:
    """The figures of one ``simulate`` result (with its samples)."""
    routes = result.get("routes", {})
    out = latency_cdf({r: v["latencies"] for r, v in routes.items()}, directory)
    for r, v in routes.items():
        out += cpu_heatmap(r, v["entries"], v["cpus"], result["duration_ns"], directory)
    return out


def compare_plots(result: dict[str, Any], directory: Path) -> list[Path]:
    """Per-operation MMIO accesses of each route, as grouped bars."""
    require()
    import matplotlib.pyplot as plt

    from directlpi.sim.compare import OPS

    routes = list(result["routes"])
    fig, ax = plt.subplots(figsize=(9, 4.2))
    width = 0.8 / max(1, len(routes))
    for i, r in enumerate(routes):
        ops = result["routes"][r]["ops"]
        totals = [sum(f["reads"] + f["writes"] for f in ops[op]["mmio"].values()) for op in OPS]
        ax.bar([j + i * width for j in range(len(OPS))], totals, width, label=r)
    ax.set_xticks([j + width * (len(routes) - 1) / 2 for j in range(len(OPS))], OPS,
                  rotation=20)
    ax.set_ylabel("MMIO accesses (each a trap when virtualised)")
    ax.set_title("per-operation cost by route")
    ax.legend(fontsize="small")
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, directory, "compare_ops")


def sweep_plots(rows: list[dict[str, Any]], directory: Path) -> list[Path]:
    """p99 latency against rate, one line per (route, cpus, cost model)."""
    require()
    import matplotlib.pyplot as plt

    lines: dict[str, list[tuple[float, int]]] = {}
    for r in rows:
        lines.setdefault(f"{r['route']} {r['cpus']} CPUs {r['costs']}", []).append(
            (r["rate_per_s"], r["p99_ns"]))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, pts in sorted(lines.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    ax.set_xlabel("MSIs per second (simulated)")
    ax.set_ylabel("p99 latency (ns)")
    ax.set_title("sweep: p99 latency against load")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="x-small")
    return _save(fig, directory, "sweep_p99")
