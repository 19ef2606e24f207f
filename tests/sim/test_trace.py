"""Traces, parsed back: ftrace text against its grammar, Chrome JSON against the
trace-event format's required fields, VCD with pyvcd's own tokenizer (vcd.reader)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from directlpi.cli import main
from directlpi.sim.run import ScenarioRun
from directlpi.sim.scenario import DEFAULT_SCENARIO, load_scenario
from directlpi.sim.trace import all_event_names, parse_filter

# <task>-<pid> [<cpu>] <flags> <secs>.<usecs>: <event>: <fields>
FTRACE_LINE = re.compile(
    r"^ {0,16}(?P<task>\S{1,16})-(?P<pid>\d+) +\[(?P<cpu>\d{3})\] (?P<flags>[.dX][.nNp]"
    r"[.hsH][.0-9][.0-9]) +(?P<secs>\d+)\.(?P<usecs>\d{6}): (?P<event>[a-z0-9_]+): "
    r"(?P<fields>.*)$")
HEADER = ("# tracer: nop", "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION")


def _ftrace(text: str) -> list[re.Match[str]]:
    lines = text.splitlines()
    assert lines[0] == HEADER[0] and HEADER[1] in lines
    body = [ln for ln in lines if not ln.startswith("#")]
    n = re.search(r"entries-in-buffer/entries-written: (\d+)/(\d+)", text)
    assert n is not None and int(n.group(1)) == len(body)
    got = [FTRACE_LINE.match(ln) for ln in body]
    bad = [ln for ln, m in zip(body, got, strict=True) if m is None]
    assert not bad, bad[:3]
    return [m for m in got if m is not None]


@pytest.fixture(scope="module")
def run_traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("traces")
    for suffix in ("txt", "json", "vcd"):
        assert main(["run", "--trace", str(d / f"t.{suffix}")]) == 0
    return d


def test_ftrace_text_follows_the_trace_files_grammar(run_traces: Path) -> None:
    recs = _ftrace((run_traces / "t.txt").read_text())
    times = [int(m["secs"]) * 1_000_000 + int(m["usecs"]) for m in recs]
    assert times == sorted(times)
    events = Counter(m["event"] for m in recs)
    assert events["irq_handler_entry"] == events["irq_handler_exit"] > 0
    assert events["gicv3_setlpir"] and events["gicv3_iar"] and events["gicv3_eoir"]
    assert events["gicv3_invlpir"] and events["gicv3_syncr"] and events["gicv3_config_fill"]
    for m in recs:
        if m["event"] == "irq_handler_entry":
            assert re.fullmatch(r"irq=\d+ name=\S+", m["fields"]) and "h" in m["flags"]
        if m["event"] == "irq_handler_exit":
            assert re.fullmatch(r"irq=\d+ ret=handled", m["fields"])
    assert set(events) <= set(all_event_names())


def test_chrome_json_has_the_trace_event_formats_required_fields(run_traces: Path) -> None:
    doc = json.loads((run_traces / "t.json").read_text())
    events = doc["traceEvents"]
    for ev in events:
        assert {"ph", "pid", "tid"} <= set(ev), ev
        assert ev["ph"] in "BEisfM"
        if ev["ph"] != "M":
            assert isinstance(ev["ts"], int | float)
        if ev["ph"] in "BisfM":
            assert isinstance(ev["name"], str)
        if ev["ph"] in "sf":
            assert "id" in ev
    names = {(e["pid"], e["args"]["name"]) for e in events if e["ph"] == "M"}
    assert (1, "CPUs") in names and (1, "CPU0") in names and (2, "devices") in names
    # Handler slices nest properly on each CPU track.
    depth: Counter[int] = Counter()
    for ev in events:
        if ev["ph"] == "B":
            depth[ev["tid"]] += 1
        elif ev["ph"] == "E":
            depth[ev["tid"]] -= 1
            assert depth[ev["tid"]] >= 0
    assert not +depth
    # Each flow arrow runs from a device's write to a handler entry after it.
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    ends = [e for e in events if e["ph"] == "f"]
    assert ends and all(e["id"] in starts and starts[e["id"]]["pid"] == 2 and e["pid"] == 1
                        and starts[e["id"]]["ts"] <= e["ts"] for e in ends)


def test_the_vcd_parses_with_pyvcds_reader(run_traces: Path) -> None:
    from vcd.reader import TokenKind, tokenize

    declared: dict[str, str] = {}
    scope = ""
    last_time = -1
    changes: Counter[str] = Counter()
    timescale = None
    with (run_traces / "t.vcd").open("rb") as f:
        for tok in tokenize(f):
            if tok.kind is TokenKind.TIMESCALE:
                timescale = (int(tok.timescale.magnitude), tok.timescale.unit.value)
            elif tok.kind is TokenKind.SCOPE:
                scope = tok.scope.ident
            elif tok.kind is TokenKind.VAR:
                declared[tok.var.id_code] = f"{scope}.{tok.var.reference}"
            elif tok.kind is TokenKind.CHANGE_TIME:
                assert tok.time_change >= last_time
                last_time = tok.time_change
            elif tok.kind in (TokenKind.CHANGE_SCALAR, TokenKind.CHANGE_VECTOR):
                ch = tok.scalar_change if tok.kind is TokenKind.CHANGE_SCALAR \
                    else tok.vector_change
                changes[declared[ch.id_code]] += 1
    assert timescale == (1, "ns")
    assert {"cpu0.irq", "cpu0.running_priority", "rd0.pending_lpis"} <= set(declared.values())
    assert len(declared) == 3 * 8
    assert changes["cpu0.irq"] >= 2 and changes["cpu0.running_priority"] >= 2
    assert changes["rd0.pending_lpis"] >= 2 or changes["rd1.pending_lpis"] >= 2


def test_trace_dash_is_ftrace_text_on_standard_output(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    assert main(["run", "--trace", "-", "--trace-events", "irq_*"]) == 0
    out = capsys.readouterr().out
    trace = out[:out.index("directlpi: scenario")]
    recs = _ftrace(trace)
    assert {m["event"] for m in recs} == {"irq_handler_entry", "irq_handler_exit"}


def test_trace_events_filter_keeps_only_what_matches(tmp_path: Path) -> None:
    t = tmp_path / "f.txt"
    assert main(["run", "--trace", str(t), "--trace-events", "irq_*,*LPI*"]) == 0
    events = {m["event"] for m in _ftrace(t.read_text())}
    assert "irq_handler_entry" in events and "gicv3_setlpir" in events
    assert "gicv3_invlpir" in events and "gicv3_iar" not in events
    assert all(e.startswith("irq_") or "lpi" in e for e in events)


@pytest.mark.parametrize(("argv", "message"), [
    (["--trace", "t.pdf"], "unknown trace format '.pdf'"),
    (["--trace", "t.txt", "--trace-events", "nosuch*"], "'nosuch*' matches no event"),
    (["--trace-events", "irq_*"], "--trace-events filters a trace"),
    (["--trace", "/nonexistent/dir/t.txt"], "--trace /nonexistent/dir/t.txt"),
])
def test_bad_trace_options_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   argv: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "t.pdf").exists()


def test_filter_patterns_ignore_case() -> None:
    wanted = parse_filter("IRQ_*,*lpi*")
    assert wanted is not None
    assert wanted("irq_handler_entry") and wanted("gicv3_setlpir") and not wanted("gicv3_iar")


def test_a_run_without_a_trace_installs_no_tracepoint() -> None:
    run = ScenarioRun(load_scenario(DEFAULT_SCENARIO))
    assert run.tracer is None and run.kern.irq.tracer is None


def test_a_timed_trace_carries_simulated_time(tmp_path: Path) -> None:
    t = tmp_path / "sim.txt"
    assert main(["simulate", "--routes", "direct-lpi", "--workload", "poisson", "--rate",
                 "100000", "--duration", "200us", "--cpus", "2", "--trace", str(t),
                 "--trace-events", "irq_handler_entry,bus_dma_write", "--json"]) == 0
    recs = _ftrace(t.read_text())
    us = [int(m["secs"]) * 1_000_000 + int(m["usecs"]) for m in recs]
    assert us[-1] <= 200 + 10             # within the simulated 200 us (plus the drain)
    writes = [u for u, m in zip(us, recs, strict=True) if m["event"] == "bus_dma_write"]
    entries = [u for u, m in zip(us, recs, strict=True) if m["event"] == "irq_handler_entry"]
    assert writes and entries and len(entries) <= len(writes)
    assert entries[0] - writes[0] in (0, 1)   # 620 ns later, in whole microseconds
