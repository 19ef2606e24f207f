"""``directlpi compare``: the counts come from the model's own observation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from directlpi.cli import main
from directlpi.hw.regs import GITS
from directlpi.kernel.irq.desc import IrqData
from directlpi.kernel.irqchip.gic_v3_its import Its
from directlpi.sim.compare import FACTS, FRAMES, OPS, ROUTES, compare, measure_ops


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return compare()


def test_every_route_op_frame_and_fact_has_its_key(result: dict[str, Any]) -> None:
    assert list(result["routes"]) == list(ROUTES)
    for r in ROUTES:
        route = result["routes"][r]
        assert set(route["ops"]) == set(OPS)
        for op in OPS:
            m = route["ops"][op]
            assert set(m["mmio"]) == set(FRAMES)
            assert all(set(v) == {"reads", "writes"} for v in m["mmio"].values())
            assert isinstance(m["memory_writes"], int) and isinstance(m["device_writes"], int)
        assert set(route["facts"]) == set(FACTS) == {
            "most_vectors", "table_memory_bytes", "multimsi_per_vector_affinity",
            "pending_on_move", "isolation", "isolation_claimed", "firmware_dt",
            "firmware_acpi"}
        if r != "rfc-v1":
            assert route["violations"] == {} and route["review_findings"] == []


def test_what_each_route_touches_on_a_move(result: dict[str, Any]) -> None:
    moves = {r: result["routes"][r]["ops"]["move"] for r in ROUTES}
    assert moves["direct-lpi"]["device_writes"] > 0                # the address is the target
    for r in ("mbi", "gicv2m", "spi-pv", "its"):
        assert moves[r]["device_writes"] == 0                       # the device untouched
    assert moves["mbi"]["mmio"]["GICD"]["writes"] > 0               # GICD_IROUTER
    assert moves["spi-pv"]["mmio"]["GICD"]["writes"] > 0            # GICD_IROUTER...
    assert moves["spi-pv"]["mmio"]["HV"]["writes"] == 0             # ...and no message to the host
    assert moves["its"]["mmio"]["ITS"]["writes"] > 0                # GITS_CWRITER
    assert moves["its"]["memory_writes"] > 0                        # MOVI + SYNC in the queue


def test_the_facts_are_measured(result: dict[str, Any]) -> None:
    facts = {r: result["routes"][r]["facts"] for r in ROUTES}
    assert [facts[r]["isolation"] for r in ROUTES] == [False, False, False, True, True, False]
    assert [facts[r]["isolation_claimed"] for r in ROUTES] == [
        False, False, False, False, True, True]                 # the RFC claims it (R6)
    assert facts["rfc-v1"]["pending_on_move"] == "lost"         # the data is no INTID (R1)
    assert facts["rfc-v1"]["multimsi_per_vector_affinity"] is False
    assert facts["spi-pv"]["most_vectors"] == 956 - 64     # less the GICv2m frame's SPIs
    assert facts["spi-pv"]["multimsi_per_vector_affinity"] is True
    assert facts["direct-lpi"]["multimsi_per_vector_affinity"] is False
    assert facts["its"]["multimsi_per_vector_affinity"] is True
    assert facts["direct-lpi"]["pending_on_move"] == "delivered on the old CPU"
    assert facts["its"]["pending_on_move"] == "moves with it (hardware)"
    assert facts["gicv2m"]["most_vectors"] == 64 and facts["mbi"]["most_vectors"] == 128
    assert facts["its"]["table_memory_bytes"] > facts["direct-lpi"]["table_memory_bytes"]
    # (The RFC's scenario spoof writes the victim's *event ID*: it reaches nobody; the
    # isolation fact above, writing the LPI itself, shows the hole.)
    assert [result["routes"][r]["spoof_reached_victim"] for r in ROUTES] == [
        True, True, True, False, False, False]


def test_the_rfc_replay_fails_where_the_review_said(result: dict[str, Any]) -> None:
    rfc = result["routes"]["rfc-v1"]
    assert set(rfc["violations"]) == {"misdirected-message"}
    assert {f.split()[0] for f in rfc["review_findings"]} == {
        "R1", "R3", "R4", "R5", "R6", "R7", "R9", "R10"}


def test_spi_pv_talks_to_the_host_only_to_allocate_and_free(result: dict[str, Any]) -> None:
    ops = result["routes"]["spi-pv"]["ops"]
    # One create interrupt per MSI-X vector, one for a whole MultiMSI block (2 HV writes:
    # HV_MSG_GPA, HV_SIGNAL); one delete on free; nothing for mask, unmask, move, retrigger.
    assert [ops[op]["mmio"]["HV"]["writes"] for op in OPS] == [2, 2, 0, 0, 0, 0, 2]
    assert all(result["routes"][r]["ops"][op]["mmio"]["HV"]["writes"] == 0
               for r in ROUTES if r != "spi-pv" for op in OPS)


def test_cpus_rewrites_every_board(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--routes", "spi-pv,its", "--cpus", "4", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cpus"] == 4 and [r["cpus"] for r in doc["routes"].values()] == [4, 4]
    assert all(r["violations"] == {} for r in doc["routes"].values())
    assert main(["compare", "--cpus", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--cpus 1" in err[0]


def test_an_access_added_to_a_driver_changes_its_count(monkeypatch: pytest.MonkeyPatch) -> None:
    before = measure_ops("its")["mask"]["mmio"]["ITS"]["reads"]
    original = Its.mask

    def mask_and_peek(self: Its, d: IrqData) -> None:
        original(self, d)
        self.k.readq(self.nodes[0].base + GITS.TYPER.offset)
    monkeypatch.setattr(Its, "mask", mask_and_peek)
    assert measure_ops("its")["mask"]["mmio"]["ITS"]["reads"] == before + 1


def test_the_rfc_replay_does_not_fail_compare_but_a_real_route_would(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["compare", "--routes", "rfc-v1,mbi"]) == 0
    assert "misdirected-message" in capsys.readouterr().out
    monkeypatch.setattr("directlpi.sim.compare.EXPECTED_TO_FAIL", ())
    assert main(["compare", "--routes", "rfc-v1"]) == 1


def test_the_cli_prints_the_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--routes", "mbi,its"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["mbi", "its"]
    assert "spoof reached its victim" in out
    assert main(["compare", "--routes", "its", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["routes"]["its"]["ops"]["move"]["mmio"]["ITS"]["writes"] == 1


@pytest.mark.parametrize(("routes", "needle"), [
    ("its,foo", "unknown route 'foo'"), ("spi-pv,rfc", "unknown route 'rfc'"),
    ("its,mbi,its", "its is named twice"),
    (",", "no route named")])
def test_bad_routes_are_one_line_and_exit_2(routes: str, needle: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--routes", routes]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
