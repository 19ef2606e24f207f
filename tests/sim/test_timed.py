"""The timed simulation: hand-computed latencies, PCIe ordering, determinism, invariants
under load, the cost model's errors, and ``directlpi simulate``'s JSON keys."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from directlpi.cli import main
from directlpi.hw.events import Event, EventKind
from directlpi.sim.costs import Costs, CostsError, load_costs
from directlpi.sim.timed import TimedRun, percentile, simulate, strip_samples
from directlpi.sim.workload import WorkloadError, load_workload, parse_duration, parse_workload

ONE_DEVICE = parse_workload({"name": "one", "devices": [{"name": "dev", "vectors": 2}]})
C = load_costs()
NO_JITTER = dataclasses.replace(C, dma_jitter_ns=0)


def _scripted(route: str, msis: list[tuple[int, int]], costs: Costs = NO_JITTER,
              cpus: int = 4) -> TimedRun:
    run = TimedRun(route, ONE_DEVICE, costs=costs, cpus=cpus, rate=0, duration_ns=100_000)
    for t, vector in msis:
        run.raise_at(t, "dev", vector)
    run.result = run.run()          # type: ignore[attr-defined]
    return run


# -- latencies by hand -------------------------------------------------------------------------

@pytest.mark.parametrize(("route", "path"), [
    ("direct-lpi", C.dma_write_ns + C.rd_signal_ns),
    ("mbi", C.dma_write_ns + C.spi_signal_ns),
    ("its", C.dma_write_ns + C.its_translate_ns + C.rd_signal_ns),
    ("spi-pv", C.dma_write_ns + C.hv_doorbell_ns + C.spi_signal_ns),
])
def test_one_msi_on_an_idle_cpu_costs_the_sum_of_its_path(route: str, path: int) -> None:
    run = _scripted(route, [(1000, 0)])
    assert run.latencies == [path + C.irq_entry_ns + C.iar_ns]
    assert sum(run.runs) == 1


def test_an_msi_behind_a_busy_cpu_waits_for_the_handler_eoi_and_exception_return() -> None:
    # Both vectors target the first CPU of their (default) mask: one PE takes both.
    run = _scripted("direct-lpi", [(0, 0), (0, 1)])
    first = C.dma_write_ns + C.rd_signal_ns + C.irq_entry_ns + C.iar_ns
    free = first + C.handler_ns + C.eoi_ns + C.irq_exit_ns
    assert [cpu for _t, cpu in run.entries] == [0, 0]
    assert run.latencies == [first, free + C.irq_entry_ns + C.iar_ns]
    assert run.busy_ns[0] == 2 * (C.irq_entry_ns + C.iar_ns + C.handler_ns + C.eoi_ns
                                  + C.irq_exit_ns)


def test_two_writes_of_one_vector_while_it_is_pending_coalesce_into_one_handler_run() -> None:
    run = _scripted("direct-lpi", [(0, 0), (10, 0)])
    assert sum(run.runs) == 1 and run.coalesced == 1
    assert run.latencies == [620, 610]


def test_with_every_cost_zero_the_timed_run_is_the_untimed_one() -> None:
    run = _scripted("direct-lpi", [(500, 0), (500, 1), (900, 0)], costs=Costs.zero())
    assert run.latencies == [0, 0, 0]
    assert run.result["invariants"]["ok"]    # type: ignore[attr-defined]


def test_a_trapped_route_pays_the_trap_on_every_mmio_access_its_pes_make() -> None:
    wl = parse_workload({"name": "move", "devices": [{"name": "dev", "vectors": 2}],
                         "actions": [{"at": 0.5, "do": "set_affinity", "device": "dev",
                                      "cpus": [1]}]})

    def clock_after_move(costs: Costs) -> tuple[int, int]:
        run = TimedRun("spi-pv", wl, costs=costs, cpus=4, rate=0, duration_ns=100_000)
        mmio: list[Event] = []
        run.plat.observe(lambda ev: mmio.append(ev) if ev.master is None else None,
                         [EventKind.MMIO_READ, EventKind.MMIO_WRITE])
        run.run()
        return run.clock[0], len(mmio)
    trapped, accesses = clock_after_move(NO_JITTER)
    untrapped, same = clock_after_move(dataclasses.replace(NO_JITTER, trapped_routes=()))
    assert accesses == same > 0          # the GICD_IROUTER write, at least
    assert trapped - untrapped == accesses * C.trap_ns


# -- posted writes: PCIe ordering -----------------------------------------------------------

@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**16))
def test_writes_land_in_issue_order_per_device_and_may_pass_another_devices(seed: int) -> None:
    wl = parse_workload({"name": "two", "devices": [
        {"name": "a", "vectors": 4, "pattern": "burst", "burst": 4},
        {"name": "b", "vectors": 4, "pattern": "burst", "burst": 4}]})
    costs = dataclasses.replace(C, dma_jitter_ns=5_000)
    run = TimedRun("direct-lpi", wl, costs=costs, cpus=4, rate=2_000_000,
                   duration_ns=100_000, seed=seed)
    issued: dict[str, list[int]] = {}
    landed: dict[str, list[int]] = {}
    order: list[str] = []
    pairs: list[tuple[int, int]] = []

    def on(ev: Event) -> None:
        m = ev.master or ""
        if ev.kind is EventKind.DMA_WRITE:
            issued.setdefault(m, []).append(run.sched.now)
        else:
            issue = issued[m][len(landed.get(m, []))]
            landed.setdefault(m, []).append(issue)
            pairs.append((issue, run.sched.now))
            order.append(m)
    run.plat.observe(on, [EventKind.DMA_WRITE, EventKind.DMA_LANDED])
    result = run.run()
    for m, times in landed.items():
        assert times == sorted(times) == issued[m]
    # No write lands before its flight time.
    assert all(t >= issue + C.dma_write_ns for issue, t in pairs)
    assert result["msis_written"] == sum(len(v) for v in issued.values()) > 0
    assert result["latency_ns"]["samples"] == result["msis_written"]


def test_a_jittered_write_holds_back_the_same_devices_next_one() -> None:
    wl = parse_workload({"name": "one", "devices": [{"name": "dev", "vectors": 2}]})
    costs = dataclasses.replace(NO_JITTER, dma_jitter_ns=10_000)
    run = TimedRun("direct-lpi", wl, costs=costs, cpus=4, rate=0, duration_ns=100_000,
                   seed=3)
    run.raise_at(0, "dev", 0)
    run.raise_at(1, "dev", 1)
    landings: list[int] = []
    run.plat.observe(lambda ev: landings.append(run.sched.now), [EventKind.DMA_LANDED])
    run.run()
    assert landings[0] <= landings[1]
    # The second was issued 1 ns later with its own jitter, but cannot land first.
    assert landings[1] >= landings[0]


def test_a_write_a_read_from_its_device_landed_early_is_not_landed_twice() -> None:
    # vector 0 at 0; the affinity change at 100 ns reads the device back (which lands
    # the write in flight: PCIe ordering); vector 1 at 200 must still fly its full time.
    wl = parse_workload({"name": "move", "devices": [{"name": "dev", "vectors": 2}],
                         "actions": [{"at": 0.001, "do": "set_affinity", "device": "dev",
                                      "vector": 0, "cpus": [1]}]})
    run = TimedRun("direct-lpi", wl, costs=NO_JITTER, cpus=4, rate=0, duration_ns=100_000)
    run.raise_at(0, "dev", 0)
    run.raise_at(200, "dev", 1)
    landings: list[int] = []
    run.plat.observe(lambda ev: landings.append(run.sched.now), [EventKind.DMA_LANDED])
    run.run()
    assert landings == [100, 200 + C.dma_write_ns]


# -- percentiles ------------------------------------------------------------------------------

def test_percentiles_are_nearest_rank() -> None:
    values = list(range(1, 101))
    assert [percentile(values, p) for p in (50, 99, 99.9, 100)] == [50, 99, 100, 100]
    assert percentile([7], 50) == 7 and percentile([], 99) == 0
    assert percentile([1, 2, 3, 4], 50) == 2 and percentile([1, 2, 3, 4], 75) == 3


# -- determinism, invariants under load ------------------------------------------------------

def test_a_run_is_deterministic_for_a_seed_and_differs_for_another() -> None:
    def once(seed: int) -> dict[str, object]:
        res = simulate(("direct-lpi",), "mixed", rate=500_000, duration_ns=400_000, cpus=4,
                       seed=seed)
        del res["routes"]["direct-lpi"]["host_seconds"]
        return res
    a, b = once(5), once(5)
    assert a == b
    assert once(6)["routes"]["direct-lpi"]["latencies"] != a["routes"]["direct-lpi"]["latencies"]


@pytest.mark.parametrize("route", ["direct-lpi", "its", "mbi"])
def test_every_invariant_holds_under_load_with_an_affinity_change_and_a_cpu_offline(
        route: str) -> None:
    res = simulate((route,), "mixed", rate=3_000_000, duration_ns=300_000, cpus=4, seed=1)
    r = res["routes"][route]
    assert r["invariants"] == {"ok": True, "violations": []}
    assert [a["do"] for a in r["actions"]] == ["set_affinity", "cpu_offline"]
    assert "refused" not in " ".join(a["result"] for a in r["actions"])
    # Every MSI a device wrote reached a handler run, many coalesced -- but those that
    # landed for a managed queue of CPU1 just before it went offline: that shut them
    # down (which the invariants allow), so no handler runs for them.
    assert r["latency_ns"]["samples"] + r["not_delivered"] == r["msis_written"] > 500
    assert r["not_delivered"] <= 2
    assert r["coalesced"] > 0
    assert r["handler_runs"] + r["coalesced"] == r["latency_ns"]["samples"]
    # CPU1 went offline at 60 %: no handler runs there afterwards.
    late = [c for t, c in r["entries"] if t > 0.6 * 300_000 + 10_000]
    assert late and 1 not in late


def test_the_timed_run_reports_the_violations_of_a_broken_provider() -> None:
    res = simulate(("rfc-v1",), "poisson", rate=200_000, duration_ns=100_000, cpus=4)
    inv = res["routes"]["rfc-v1"]["invariants"]
    assert not inv["ok"] and {v["invariant"] for v in inv["violations"]} == {
        "misdirected-message"}


# -- workloads and durations ------------------------------------------------------------------

def test_every_builtin_workload_runs() -> None:
    for name in ("poisson", "burst", "nic-rss", "storage", "mixed"):
        res = simulate(("direct-lpi",), name, rate=100_000, duration_ns=100_000, cpus=2)
        assert res["routes"]["direct-lpi"]["invariants"]["ok"], name


def test_bad_workloads_and_durations_name_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "w.toml"
    bad.write_text('[[devices]]\nname = "x"\nkind = "msi"\nvectors = 3\n')
    with pytest.raises(WorkloadError, match=r"devices\[0\].*MultiMSI block"):
        load_workload(bad)
    with pytest.raises(WorkloadError, match="not a built-in workload"):
        load_workload("nope")
    assert parse_duration("250us") == 250_000 and parse_duration("2ms") == 2_000_000
    with pytest.raises(Exception, match="--duration 3 parsecs"):
        parse_duration("3 parsecs")


# -- the cost model ---------------------------------------------------------------------------

def test_cost_overrides_replace_only_what_they_name(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[cpu]\nhandler_ns = 5\n[virtualisation]\ntrapped_routes = []\n")
    c = load_costs(f)
    assert c.handler_ns == 5 and c.trapped_routes == () and c.iar_ns == load_costs().iar_ns


@pytest.mark.parametrize(("text", "message"), [
    ("[cpu]\nhandler = 5\n", "[cpu] handler: unknown key"),
    ("[gpu]\nx = 1\n", "unknown table [gpu]"),
    ("[cpu]\nhandler_ns = -1\n", "handler_ns = -1: a whole number of ns"),
    ("[cpu]\nhandler_ns = 1.5\n", "handler_ns = 1.5"),
    ("[virtualisation]\ntrapped_routes = ['kvm']\n", "unknown route 'kvm'"),
    ("[cpu\n", "not TOML"),
])
def test_bad_cost_files_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(CostsError) as e:
        load_costs(f)
    assert message in str(e.value) and str(f) in str(e.value)


def test_the_shipped_cost_file_says_where_every_figure_comes_from() -> None:
    from directlpi.sim.costs import default_costs_text
    text = default_costs_text()
    lines = text.splitlines()
    for i, ln in enumerate(lines):
        if "_ns =" in ln and not ln.startswith("#"):
            above = "\n".join(lines[max(0, i - 6):i])
            assert "Assumption" in above or "assumption" in above, ln


# -- the command ------------------------------------------------------------------------------

def test_simulate_json_has_the_documented_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--routes", "direct-lpi,mbi", "--duration", "200us", "--cpus",
                 "4", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["schema_version"] == 1
    for name in ("direct-lpi", "mbi"):
        r = got["routes"][name]
        assert set(r["latency_ns"]) >= {"p50", "p99", "p999", "max"}
        assert isinstance(r["throughput_per_s"], float)
        assert [p["cpu"] for p in r["per_cpu"]] == [0, 1, 2, 3]
        assert set(r["per_cpu"][0]) == {"cpu", "interrupts", "busy_ns", "load"}
        assert r["invariants"]["ok"] is True
        assert "latencies" not in r and "entries" not in r


@pytest.mark.parametrize(("argv", "message"), [
    (["--costs", "/nonexistent.toml"], "--costs /nonexistent.toml"),
    (["--workload", "nope"], "--workload nope"),
    (["--rate", "0"], "--rate 0"),
    (["--duration", "forever"], "--duration forever"),
    (["--routes", "kvm"], "unknown route 'kvm'"),
    (["--cpus", "1"], "--cpus 1"),
    (["--trace", "t.pdf"], "unknown trace format '.pdf'"),
])
def test_simulate_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str],
                                                   argv: list[str], message: str) -> None:
    assert main(["simulate", "--duration", "100us", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_simulate_text_report_names_every_route(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--routes", "its", "--duration", "100us", "--cpus", "2"]) == 0
    out = capsys.readouterr().out
    assert "p99.9 ns" in out and out.count("\nits ") == 1 and "hold" in out


def test_strip_samples_keeps_the_figures() -> None:
    res = simulate(("direct-lpi",), "poisson", rate=100_000, duration_ns=50_000, cpus=2)
    assert set(res["routes"]["direct-lpi"]) - set(
        strip_samples(res)["routes"]["direct-lpi"]) == {"latencies", "entries"}
