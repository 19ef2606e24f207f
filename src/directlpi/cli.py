"""The ``directlpi`` command line.

* ``directlpi run`` -- the main job: a scenario (the embedded default, or
  ``--scenario FILE``) on the default board (or ``--platform BOARD``, a
  devicetree), ``/proc/interrupts`` and the invariant report; exit 0 only when
  no invariant is violated.
* ``directlpi walkthrough`` -- one Direct LPI, register by register, on bare hardware.
* ``directlpi bench`` -- the figures of ``bench/``.
* ``directlpi check FILE...`` -- validate firmware descriptions: devicetree sources
  and blobs (loader, dt-schema bindings, a boot on the described hardware) and ACPI
  MADT/IORT tables.
* ``directlpi acpi [--from BOARD]`` -- write a board's MADT and IORT.
* ``directlpi compare [--routes A,B] [--json]`` -- every MSI route on the same work.

Exit status, the same for every command: 0 all good; 1 the run or check found a
problem (an invariant violated, a step that failed, a firmware problem); 2 bad usage
or input that cannot be used (unknown option, missing file, malformed scenario or
board); 70 an internal error (a bug in directlpi); 130 interrupted (Ctrl-C); 141
standard output closed early (``| head``).  Errors print one line (``directlpi:
error: ...``, or a JSON object on standard output with ``--json``); a traceback is
shown only with ``DIRECTLPI_DEBUG=1``.
"""

from __future__ import annotations

import signal
import sys


def _interrupted_at_start(signum: int, frame: object) -> None:
    print("directlpi: interrupted", file=sys.stderr)
    raise SystemExit(130)


# Ctrl-C while the command line is still importing: one line and 130, not a traceback
# (main() puts Python's own handler back, so commands see KeyboardInterrupt).  Only
# when this process is the command line, not for a program that imports this module.
if sys.argv and sys.argv[0].rsplit("/", 1)[-1] in ("directlpi", "__main__.py"):
    signal.signal(signal.SIGINT, _interrupted_at_start)

import argparse  # noqa: E402 (after the start-up Ctrl-C handler)
import contextlib  # noqa: E402 (after the start-up Ctrl-C handler)
import errno  # noqa: E402 (after the start-up Ctrl-C handler)
import json  # noqa: E402 (after the start-up Ctrl-C handler)
import os  # noqa: E402 (after the start-up Ctrl-C handler)
import traceback  # noqa: E402 (after the start-up Ctrl-C handler)
from collections.abc import Sequence  # noqa: E402 (after the start-up Ctrl-C handler)
from pathlib import Path  # noqa: E402 (after the start-up Ctrl-C handler)
from typing import Any  # noqa: E402 (after the start-up Ctrl-C handler)

from directlpi import _native  # noqa: E402 (after the start-up Ctrl-C handler)
from directlpi.errors import DirectLPIError  # noqa: E402 (after the start-up Ctrl-C handler)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_PIPE = 141            # 128 + SIGPIPE, as a shell reports a writer killed by it


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="directlpi",
        description="MSIs on an Arm GICv3 without an ITS (Direct LPI): an executable model.")
    from directlpi import __version__
    p.add_argument("--version", action="version", version=f"directlpi {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="the main job: a scenario and its invariant report")
    run.add_argument("--scenario", type=Path, default=None,
                     help="TOML scenario (default: the embedded default scenario)")
    run.add_argument("--cpus", type=int, default=None, help="override the scenario's CPU count")
    run.add_argument("--platform", type=Path, default=None, metavar="BOARD",
                     help="run on this devicetree (.dts or .dtb) instead of the default board")
    run.add_argument("--provider", default=None, metavar="NAME",
                     help="the LPI MSI provider to boot with: direct-lpi (what the default "
                          "board describes) or rfc-v1 (the 2021 RFC replayed in its place, "
                          "its review's objections reported: docs/rfc-v1.md)")
    run.add_argument("--posted-writes", action="store_true",
                     help="hold MSIs in the interconnect, landing later in PCIe order "
                          "(overrides the scenario's [platform] posted_writes)")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument("--verbose", "-v", action="store_true",
                     help="add the kernel log (dmesg) to the text report")
    _add_trace_options(run)
    walk = sub.add_parser("walkthrough", help="one Direct LPI, register by register")
    walk.add_argument("--cpus", type=int, default=8, help="number of PEs (default 8)")
    walk.add_argument("--cpu", type=int, default=1,
                      help="PE that receives the LPI (default 1; -1 is the last)")
    walk.add_argument("--json", action="store_true", help="print one JSON object")
    bench = sub.add_parser("bench", help="run the benchmarks in bench/")
    bench.add_argument("--json", action="store_true", help="print {key: value} as JSON")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    bench.add_argument("--bench-dir", type=Path, default=None,
                       help="directory of bench_*.py modules (default: the checkout's bench/)")
    bench.add_argument("--only", action="append", default=[], metavar="MODULE",
                       help="run only these bench modules (e.g. bench_hw); repeatable")
    bench.add_argument("--compare", type=Path, default=None, metavar="BASELINE.json",
                       help="print each key's ratio to a saved `bench --json` run")
    cmp = sub.add_parser("compare", help="every MSI route on the same work, side by side")
    cmp.add_argument("--routes", default=None, metavar="A,B,...",
                     help="routes to compare (default: direct-lpi,mbi,gicv2m,spi-pv,its,rfc-v1)")
    cmp.add_argument("--cpus", type=int, default=None,
                     help="every route's board with this many CPUs (default 8; 2..512)")
    cmp.add_argument("--json", action="store_true", help="print one JSON object")
    cmp.add_argument("--plot", type=Path, default=None, metavar="DIR",
                     help="write the per-operation cost bars (PNG and SVG) into DIR "
                          "(needs the 'plot' extra)")
    _add_simulate_parsers(sub)
    _add_soak_parser(sub)
    check = sub.add_parser("check", help="validate firmware descriptions (DTS/DTB, ACPI "
                           "MADT and IORT)")
    check.add_argument("files", type=Path, nargs="+", metavar="FILE")
    acpi = sub.add_parser("acpi", help="write a board's MADT and IORT (default board, or "
                          "--from a devicetree)")
    acpi.add_argument("--from", dest="source", type=Path, default=None, metavar="BOARD",
                      help="the devicetree (.dts or .dtb) to describe in ACPI")
    acpi.add_argument("--cpus", type=int, default=None,
                      help="number of PEs of the default board (default 8)")
    acpi.add_argument("--gicr-in-gicc", action="store_true",
                      help="describe each CPU's redistributor in its GICC (GICR Base Address) "
                      "instead of GICR region subtables")
    acpi.add_argument("--no-direct-lpi", action="store_true",
                      help="leave the proposed Direct LPI node out of the IORT")
    acpi.add_argument("--out", type=Path, default=Path("."),
                      help="directory for apic.dat, iort.dat and mcfg.dat, created if missing "
                           "(default: .)")
    return p


def _add_simulate_parsers(sub: Any) -> None:
    sim = sub.add_parser("simulate", help="timed simulation: latency and load per route "
                         "(docs/simulate.md)")
    sim.add_argument("--routes", default=None, metavar="A,B,...",
                     help="routes to simulate (default: direct-lpi,mbi,gicv2m,its,spi-pv)")
    sim.add_argument("--workload", default=None, metavar="NAME|FILE",
                     help="poisson, burst, nic-rss, storage, mixed (default) or a TOML file")
    sim.add_argument("--rate", type=float, default=None, metavar="R",
                     help="MSIs per second of simulated time, whole workload (default 200000)")
    sim.add_argument("--duration", default=None, metavar="T",
                     help="simulated time: 10ms (default), 250us, 1s ...")
    sim.add_argument("--cpus", type=int, default=None, help="CPUs of every board (default 8)")
    sim.add_argument("--costs", type=Path, default=None, metavar="FILE",
                     help="cost model overrides (TOML; the defaults: directlpi "
                          "simulate --show-costs)")
    sim.add_argument("--show-costs", action="store_true",
                     help="print the shipped cost model, with its sources, and stop")
    sim.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    sim.add_argument("--json", action="store_true", help="print one JSON object")
    sim.add_argument("--plot", type=Path, default=None, metavar="DIR",
                     help="write latency CDF and per-CPU heat map (PNG, SVG) into DIR "
                          "(needs the 'plot' extra)")
    _add_trace_options(sim)
    sw = sub.add_parser("sweep", help="a Cartesian sweep of simulate over routes, CPUs, "
                        "rates and cost models (docs/simulate.md)")
    sw.add_argument("config", type=Path, metavar="CONFIG.toml")
    sw.add_argument("--executor", choices=("local", "dask"), default="local",
                    help="local: a process pool (default); dask: a dask.distributed cluster")
    sw.add_argument("--workers", type=int, default=None,
                    help="parallel points (default: the CPU count)")
    sw.add_argument("--scheduler", default=None, metavar="ADDRESS",
                    help="with --executor dask: the scheduler to connect to (default: a "
                         "LocalCluster started here)")
    sw.add_argument("--out", type=Path, default=Path("sweep-out"), metavar="DIR",
                    help="where sweep.csv, sweep.json and plots go (default sweep-out)")
    sw.add_argument("--json", action="store_true", help="print the table as JSON too")


def _progress() -> Any:
    """A rich progress display on a terminal (standard error), else None."""
    if not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn(
        "{task.percentage:>3.0f}%"), TimeElapsedColumn(), transient=True,
        console=_stderr_console())


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from directlpi.sim.compare import EXPECTED_TO_FAIL, parse_routes
    from directlpi.sim.costs import default_costs_text
    from directlpi.sim.timed import (
        DEFAULT_DURATION_NS,
        DEFAULT_RATE,
        DEFAULT_ROUTES,
        render,
        simulate,
        strip_samples,
    )
    from directlpi.sim.workload import parse_duration

    if args.show_costs:
        print(default_costs_text(), end="")
        return EXIT_OK
    routes = DEFAULT_ROUTES if args.routes is None else parse_routes(args.routes)
    cpus = 8 if args.cpus is None else args.cpus
    if not 2 <= cpus <= 512:
        raise DirectLPIError(f"--cpus {cpus}: simulate takes 2..512 CPUs")
    _check_trace_args(args)
    if args.trace == "-" and len(routes) > 1:
        raise DirectLPIError("--trace -: one route's trace only (--routes NAME), or a file "
                             "(one per route)")
    plot = _plot_module(args.plot)
    duration = DEFAULT_DURATION_NS if args.duration is None else parse_duration(args.duration)
    rate = DEFAULT_RATE if args.rate is None else args.rate
    done: dict[str, Any] = {}
    bar = _progress()
    status = EXIT_OK
    try:
        if bar is None:
            simulate(routes, args.workload, rate=rate,
                     duration_ns=duration, cpus=cpus, costs=args.costs, seed=args.seed,
                     trace=args.trace, trace_events=args.trace_events, done=done)
        else:
            with bar:
                tasks = {r: bar.add_task(f"simulate {r}", total=duration) for r in routes}
                simulate(routes, args.workload, rate=rate,
                         duration_ns=duration, cpus=cpus, costs=args.costs, seed=args.seed,
                         trace=args.trace, trace_events=args.trace_events, done=done,
                         progress=lambda r, ns: bar.update(tasks[r], completed=ns))
    except KeyboardInterrupt:
        if not done.get("routes"):
            raise
        print("directlpi: interrupted: the routes finished so far follow", file=sys.stderr)
        status = EXIT_INTERRUPTED
    if plot is not None:
        for path in plot.simulate_plots(done, args.plot):
            print(f"{path}", file=sys.stderr)
    result = strip_samples(done)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render(result))
    if status != EXIT_OK:
        return status
    bad = [r for r, v in result["routes"].items()
           if not v["invariants"]["ok"] and r not in EXPECTED_TO_FAIL]
    return EXIT_FAILED if bad else EXIT_OK


def _plot_module(directory: Path | None) -> Any:
    """:mod:`directlpi.sim.plots` when ``--plot DIR`` is asked for (DirectLPIError when
    matplotlib, the 'plot' extra, is missing), else None."""
    if directory is None:
        return None
    from directlpi.sim import plots

    plots.require()
    return plots


def _cmd_sweep(args: argparse.Namespace) -> int:
    from directlpi.sim.sweep import load_sweep, run_sweep, write_results

    config = load_sweep(args.config)
    if args.workers is not None and not 1 <= args.workers <= 256:
        raise DirectLPIError(f"--workers {args.workers}: 1..256")
    if args.scheduler is not None and args.executor != "dask":
        raise DirectLPIError("--scheduler ADDRESS is for --executor dask")
    bar = _progress()
    rows: list[dict[str, Any]] = []
    status = EXIT_OK
    try:
        if bar is None:
            run_sweep(config, executor=args.executor, workers=args.workers,
                      scheduler=args.scheduler, rows=rows)
        else:
            with bar:
                task = bar.add_task("sweep", total=len(config.points()))
                run_sweep(config, executor=args.executor, workers=args.workers,
                          scheduler=args.scheduler, rows=rows,
                          progress=lambda: bar.advance(task))
    except KeyboardInterrupt:
        print(f"directlpi: interrupted: {len(rows)} point(s) finished, written",
              file=sys.stderr)
        status = EXIT_INTERRUPTED
    for path in write_results(rows, args.out):
        print(path, file=sys.stderr)
    if args.json:
        print(json.dumps({"schema_version": 1, "points": rows}, indent=2))
    else:
        print(f"directlpi sweep: {len(rows)} point(s) -> {args.out}")
    if status != EXIT_OK:
        return status
    return EXIT_OK if all(r["invariants_ok"] for r in rows) else EXIT_FAILED


def _add_soak_parser(sub: Any) -> None:
    soak = sub.add_parser("soak", help="the reliability campaign: fuzzed MMIO, mutated "
                          "firmware, whole-stack operations with faults (docs/reliability.md)")
    soak.add_argument("--parts", default="mmio,firmware,stack",
                      help="comma-separated parts (default mmio,firmware,stack)")
    limit = soak.add_mutually_exclusive_group()
    limit.add_argument("--ops", default=None, metavar="N|PART=N,...",
                       help="operations per part (stack: per board), e.g. 10000 or "
                            "mmio=1000000,firmware=200000,stack=1000000")
    limit.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                       help="wall time, shared among the parts (default 60 without --ops)")
    soak.add_argument("--seed", type=int, default=0, help="the campaign's seed (default 0)")
    soak.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    soak.add_argument("--out", type=Path, default=Path("soak-findings"), metavar="DIR",
                      help="where reproducers of findings go (default soak-findings)")
    soak.add_argument("--replay", type=Path, default=None, metavar="FILE",
                      help="play a reproducer again instead (exit 1 if it still fails)")
    soak.add_argument("--json", action="store_true", help="print the summary as JSON")


def _soak_ops(text: str, parts: tuple[str, ...]) -> dict[str, int]:
    """``--ops``: one count for every part, or ``part=N`` pairs."""
    from directlpi.sim.soak import PARTS

    out: dict[str, int] = {}
    for item in text.split(","):
        name, _, num = item.rpartition("=")
        if name and name not in PARTS:
            raise ValueError(f"--ops: {name!r} is not a part ({', '.join(PARTS)})")
        if not num.isdigit():
            raise ValueError(f"--ops: {num!r} is not a count of operations")
        for part in [name] if name else parts:
            out[part] = int(num)
    return out


def _cmd_soak(args: argparse.Namespace) -> int:
    from directlpi.sim import soak

    if args.replay is not None:
        failed, what = soak.replay(args.replay)
        print(f"{args.replay}: {'reproduced' if failed else 'not reproduced'}: {what}")
        return EXIT_FAILED if failed else EXIT_OK
    parts = tuple(p for p in args.parts.split(",") if p)
    bad = [p for p in parts if p not in soak.PARTS]
    try:
        if bad or not parts:
            raise ValueError(f"--parts: {', '.join(bad) or 'none'}: the parts are "
                             f"{', '.join(soak.PARTS)}")
        if args.jobs < 1 or (args.budget is not None and args.budget <= 0):
            raise ValueError("--jobs must be at least 1 and --budget positive")
        ops = _soak_ops(args.ops, parts) if args.ops is not None else None
    except ValueError as exc:
        return _error(args, str(exc), "input", EXIT_USAGE)
    budget = args.budget if args.budget is not None or ops is not None else 60.0
    c = soak.Campaign(parts=parts, seed=args.seed, ops=ops, budget=budget, jobs=args.jobs,
                      out=args.out)
    print(f"directlpi soak: seed {c.seed}, parts {','.join(parts)}, jobs {c.jobs}",
          file=sys.stderr)
    progress = _progress()
    if progress is None:
        summary = soak.run_campaign(c)
    else:
        with progress:
            task = progress.add_task("soak", total=None)

            def show(done: dict[str, int], elapsed: float) -> None:
                text = "  ".join(f"{k} {v:,}" for k, v in sorted(done.items()))
                progress.update(task, description=f"soak {elapsed:5.0f} s  {text}")
            summary = soak.run_campaign(c, show)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        _print_soak(summary)
    return EXIT_OK if summary["ok"] else EXIT_FAILED


def _print_soak(summary: dict[str, Any]) -> None:
    r = summary["results"]
    print(f"soak: seed {summary['seed']}, {summary['seconds']:.0f} s, jobs {summary['jobs']}")
    if "mmio" in r:
        m = r["mmio"]
        print(f"  mmio      {m['accesses']:>11,} accesses on {m['platforms']:,} platforms "
              f"({m['per_s']:,.0f}/s per process), {m['bursts']:,} state checks")
    if "firmware" in r:
        f = r["firmware"]
        print(f"  firmware  {f['dtbs']:>11,} DTBs, {f['acpi_sets']:,} ACPI sets: "
              f"{f['documented_errors']:,} documented errors, {f['platforms']:,} platforms, "
              f"{f['booted']:,} booted ({f['per_s']:,.0f}/s per process)")
    for board, b in r.get("stack", {}).get("boards", {}).items():
        ck = b["checker"]
        print(f"  stack     {b['ops']:>11,} ops on {board:<10} ({b['per_s']:,.0f}/s per "
              f"process): lost {ck.get('lost', 0)}, spurious {ck.get('spurious', 0)}, "
              f"spoofs flagged {b['spoofs_flagged']:,}/{b['spoofs_sent']:,}")
    for f in summary["findings"]:
        print(f"  FINDING {f['part']} {f['board']} seed {f['seed']}: {f['error']}")
        print(f"          {f['ops_before']} -> {f['ops_after']} operations: {f['file']}")
    print(f"  {len(summary['findings'])} finding(s)")


def _cmd_check(args: argparse.Namespace) -> int:
    from directlpi.firmware.acpi import FirmwareError
    from directlpi.firmware.check import check_files
    from directlpi.platform import Platform

    res = check_files(args.files)
    if res.madt is not None and not res.problems:
        try:        # the hardware must be buildable from what the tables say
            Platform.from_acpi(res.madt[1], res.iort[1] if res.iort else None,
                               mcfg=res.mcfg[1] if res.mcfg else None)
        except FirmwareError as e:
            res.problems.append(f"{res.madt[0]}: {e}")
    for path, dtb in res.devicetrees:
        problems, notes = _boot_check(dtb)
        res.problems += [f"{path}: {p}" for p in problems]
        res.summary += [f"{path}: {n}" for n in notes]
    for line in res.problems:
        print(line)
    if res.problems:
        return EXIT_FAILED
    order = [f"{p}:" for p in args.files]
    res.summary.sort(key=lambda ln: next((i for i, p in enumerate(order) if ln.startswith(p)),
                                         len(order)))
    for line in res.summary:
        print(line)
    print(f"directlpi check: {len(args.files)} file(s) valid")
    return EXIT_OK


def _boot_check(dtb: bytes) -> tuple[list[str], list[str]]:
    """Build the board a devicetree describes, boot a kernel on it: does the description
    match the hardware?  Problems (no RD where the GIC node says, kernel errors) and notes
    (the kernel's warnings, e.g. Direct LPI refused)."""
    from directlpi.firmware.acpi import FirmwareError
    from directlpi.kernel.errors import KernelError
    from directlpi.platform import Platform

    try:
        plat = Platform.from_devicetree(dtb)
        kern = plat.boot()
    except FirmwareError as e:
        return [str(e)], []
    except KernelError as e:
        return [f"{plat.board.gic.fwnode.name}: reg: the GICR regions do not match the "
                f"hardware: the kernel stops with \"{e}\""], []
    problems = [f"{plat.board.gic.fwnode.name}: reg: {ln.text}" for ln in kern.log.lines
                if ln.level == "warn" and "No redistributor present" in ln.text]
    notes = [f"kernel: {ln}" for ln in kern.log.lines
             if ln.level in ("warn", "err") and "No redistributor present" not in ln.text]
    notes.append(f"kernel: MSI provider: {kern.msi_provider}")
    return problems, notes


def _cmd_acpi(args: argparse.Namespace) -> int:
    from directlpi.firmware.acpi import (
        build_iort,
        build_madt,
        build_mcfg,
        direct_lpi_routes,
        its_routes,
        mbi_routes,
    )
    from directlpi.firmware.devicetree import load_board
    from directlpi.platform import Platform

    if args.source is not None:
        if args.cpus is not None:
            raise DirectLPIError("--cpus and --from conflict: the board file says how many "
                                 "CPUs there are")
        board = load_board(args.source).board
    else:
        cpus = 8 if args.cpus is None else args.cpus
        if not 1 <= cpus <= 512:
            raise DirectLPIError(f"--cpus {cpus}: the platform takes 1..512 CPUs")
        board = Platform.default(cpus=cpus).board
    routes, left_out = direct_lpi_routes(board)
    if args.no_direct_lpi:
        routes = ()
    to_its, v2m_left_out = its_routes(board)
    left_out += v2m_left_out
    to_mbi = mbi_routes(board)
    left_out += [f"segment {r.segment} RIDs {r.rid_base:#x}+{r.count:#x} use MBI: written to a "
                 f"PROPOSED GIC MSI target node (MBI, SPIs {r.spi_base}+{r.spi_count}); ACPI "
                 "itself has no MBI description" for r in to_mbi]
    if board.vmbus is not None:
        left_out.append("the VMBus and its vPCI bus are not in these tables: ACPI describes "
                        "VMBus in the DSDT (and pci-hyperv takes its MSI parent from the GSI "
                        "layer), which directlpi does not write")
    # A board with an ITS or GICv2m frames gets a root complex node per host bridge, and
    # the proposed Direct LPI node only if it describes Direct LPI; the others (no ITS, no
    # GICv2m) get the proposed node whatever they say, as before.
    gic = board.gic
    newer = bool(gic.its or gic.v2m_frames)
    iort = build_iort((*routes, *to_mbi, *to_its), its_ids=[i.translation_id for i in gic.its],
                      direct_lpi_node=gic.direct_lpi or not newer,
                      segments=[h.segment for h in board.pci_hosts] if newer else ())
    tables = {"apic.dat": build_madt(board, gicr_in_gicc=args.gicr_in_gicc), "iort.dat": iort}
    if board.pci_hosts:
        tables["mcfg.dat"] = build_mcfg(board)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DirectLPIError(f"--out {args.out}: {exc.strerror}", exc.errno or 2) from None
    for name, data in tables.items():
        try:
            (args.out / name).write_bytes(data)
        except OSError as exc:
            raise DirectLPIError(f"--out {args.out}: {exc.strerror}", exc.errno or 2) from None
        print(f"{args.out / name}: {len(data)} bytes")
    for line in left_out:
        print(f"note: {line}")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from directlpi.sim.run import ScenarioRun
    from directlpi.sim.scenario import DEFAULT_SCENARIO, load_scenario

    scenario = load_scenario(args.scenario or DEFAULT_SCENARIO)
    from directlpi.kernel.kernel import MSI_PROVIDERS
    if args.provider is not None and args.provider not in MSI_PROVIDERS:
        raise DirectLPIError(f"--provider {args.provider}: unknown MSI provider (known: "
                             f"{', '.join(MSI_PROVIDERS)})")
    if args.cpus is not None and not 1 <= args.cpus <= 512:
        raise DirectLPIError(f"--cpus {args.cpus}: the platform takes 1..512 CPUs")
    _check_trace_args(args)
    play = ScenarioRun(scenario, cpus=args.cpus, trace=args.trace, platform=args.platform,
                       posted_writes=True if args.posted_writes else None,
                       provider=args.provider, trace_events=args.trace_events)
    progress = _progress()
    if progress is None:
        report = play.run()
    else:
        with progress:
            task = progress.add_task("run", total=None)
            report = play.run(lambda done, total: progress.update(
                task, completed=done, total=total, description=f"run: tick {done}/{total}"))
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.render(verbose=args.verbose))
    return EXIT_OK if report.ok else EXIT_FAILED


def _check_trace_args(args: argparse.Namespace) -> None:
    """``--trace`` / ``--trace-events``: the format known, standard output not shared."""
    from directlpi.sim.trace import trace_format

    if args.trace is None:
        if args.trace_events is not None:
            raise DirectLPIError("--trace-events filters a trace: give --trace FILE too")
        return
    trace_format(args.trace)
    if str(args.trace) == "-" and args.json:
        raise DirectLPIError("--trace - and --json both write standard output: give the "
                             "trace a file")


def _add_trace_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--trace", default=None, metavar="FILE",
                     help="write a trace, its format by suffix: .txt ftrace text, .json "
                          "Chrome trace events (Perfetto), .vcd value-change dump "
                          "(GTKWave); '-': ftrace text on standard output (docs/traces.md)")
    cmd.add_argument("--trace-events", default=None, metavar="PATTERNS",
                     help="trace only events matching these comma-separated fnmatch "
                          "patterns, case ignored (e.g. 'irq_*,*lpi*')")


def _cmd_compare(args: argparse.Namespace) -> int:
    from directlpi.sim.compare import (
        EXPECTED_TO_FAIL,
        compare,
        parse_cpus,
        parse_routes,
        render,
    )

    plot = _plot_module(args.plot)
    result = compare(parse_routes(args.routes), parse_cpus(args.cpus))
    if plot is not None:
        for path in plot.compare_plots(result, args.plot):
            print(path, file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render(result))
    bad = [r for r, v in result["routes"].items()
           if (v["violations"] or v["review_findings"]) and r not in EXPECTED_TO_FAIL]
    return EXIT_FAILED if bad else EXIT_OK


def _cmd_walkthrough(args: argparse.Namespace) -> int:
    from directlpi.sim.walkthrough import run_walkthrough

    w = run_walkthrough(cpus=args.cpus, cpu=args.cpu)
    if args.json:
        print(json.dumps(w.as_dict(), indent=2))
    else:
        print(w.render())
    return EXIT_OK if all(s.ok for s in w.steps) else EXIT_FAILED


def _cmd_bench(args: argparse.Namespace) -> int:
    from directlpi.benchkit import (
        compare_figures,
        default_bench_dir,
        iter_benchmarks,
        load_baseline,
    )

    baseline = load_baseline(args.compare) if args.compare is not None else None
    only = set(args.only)
    bench_dir = args.bench_dir or default_bench_dir()
    select = (lambda name: name in only) if only else None
    progress = _progress()
    figures: list[Any] = []
    try:
        with progress if progress is not None else contextlib.nullcontext():
            task = progress.add_task("bench", total=None) if progress is not None else None
            for done, total, name, found in iter_benchmarks(bench_dir, args.quick, select):
                figures += found
                if progress is not None:
                    progress.update(task, completed=done, total=total,
                                    description=f"bench: {name} ({done}/{total})")
    except KeyboardInterrupt:                 # keep what was measured
        _print_figures(figures)
        print("directlpi: interrupted: the figures above were measured", file=sys.stderr)
        return 130
    if not figures:
        what = f"no bench module named {', '.join(sorted(only))}" if only else \
            "no bench_*.py module"
        raise DirectLPIError(f"{bench_dir}: {what} (each defines run(quick) -> list[Figure])",
                             errno.ENOENT)
    width = max((len(f.key) for f in figures), default=10)
    if baseline is not None:
        rows, missing = compare_figures(figures, baseline)
        if args.json:
            print(json.dumps({c.figure.key: {"value": c.figure.value, "baseline": c.baseline,
                                             "ratio": c.ratio, "verdict": c.verdict}
                              for c in rows}, indent=2))
            return EXIT_OK
        print(f"# build: {_native.BUILD}")
        print(f"{'key':<{width}}  {'now':>14} {'baseline':>14} {'ratio':>7} verdict unit")
        for c in rows:
            then = "" if c.baseline is None else f"{c.baseline:>14,.3f}"
            ratio = "" if c.ratio is None else f"{c.ratio:6.2f}x"
            print(f"{c.figure.key:<{width}}  {c.figure.value:>14,.3f} {then:>14} {ratio:>7} "
                  f"{c.verdict:<6} {c.figure.unit}")
        for key in missing:
            print(f"{key:<{width}}  not measured in this run (in the baseline)")
        return EXIT_OK
    if args.json:
        print(json.dumps({f.key: f.value for f in figures}, indent=2))
    else:
        # Which build was timed: a stale or missing compiled build runs 2.5-3x slower.
        print(f"# build: {_native.BUILD}")
        _print_figures(figures)
    return EXIT_OK


def _print_figures(figures: list[Any]) -> None:
    width = max((len(f.key) for f in figures), default=10)
    for f in figures:
        print(f"{f.key:<{width}}  {f.value:>14,.3f} {f.unit:<10} {f.what}")


def _failure_status(exc: DirectLPIError) -> int:
    """1 when the run itself found the problem, 2 when the input could not be used."""
    from directlpi.sim.scenario import StepFailed

    return EXIT_FAILED if isinstance(exc, StepFailed) else EXIT_USAGE


def _error(args: argparse.Namespace, text: str, kind: str, status: int) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"schema_version": 1, "ok": False,
                          "error": {"kind": kind, "message": text, "exit_status": status}}))
    print(f"directlpi: {'internal error' if kind == 'internal' else 'error'}: {text}",
          file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``directlpi`` console script."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = argparse.Namespace()
    try:
        args = _parser().parse_args(argv)
        if args.command is None:
            _parser().print_help()
            return EXIT_USAGE
        handlers = {"run": _cmd_run, "walkthrough": _cmd_walkthrough, "bench": _cmd_bench,
                    "check": _cmd_check, "acpi": _cmd_acpi, "compare": _cmd_compare,
                    "simulate": _cmd_simulate, "sweep": _cmd_sweep, "soak": _cmd_soak}
        status = handlers[args.command](args)
        sys.stdout.flush()               # a closed pipe shows up here, not at exit
        return status
    except DirectLPIError as exc:
        status = _failure_status(exc)
        return _error(args, f"{exc} [{exc.errno_name}]",
                      "failed" if status == EXIT_FAILED else "input", status)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)     # a second Ctrl-C: no traceback
        print("directlpi: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): say nothing more, and keep Python's own
        # flush at exit from failing on the same pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE
    except Exception as exc:  # a bug in directlpi, not in the user's input
        if os.environ.get("DIRECTLPI_DEBUG"):
            traceback.print_exc()
        return _error(args, f"{type(exc).__name__}: {exc} (set DIRECTLPI_DEBUG=1 for a "
                      "traceback)", "internal", EXIT_INTERNAL)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
