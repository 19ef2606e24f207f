"""``directlpi run --provider rfc-v1``: the default scenario with the RFC replayed reports
each objection of the review it trips, labelled; the real provider's run reports none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from directlpi.cli import main
from directlpi.kernel.irq.desc import IrqData
from directlpi.kernel.irqchip import rfc_v1
from directlpi.kernel.irqchip.rfc_v1 import RfcV1
from directlpi.sim.review import FINDINGS
from directlpi.sim.run import RunReport, ScenarioRun, run_scenario
from directlpi.sim.scenario import DEFAULT_SCENARIO, load_scenario, parse_scenario

BOARDS = Path(__file__).resolve().parents[2] / "src" / "directlpi" / "boards"

# What the default scenario shows of the RFC on the default board.
DEFAULT_RUN = {
    ("R1", "data-is-not-the-intid"), ("R3", "multimsi-block-split"),
    ("R4", "pending-state-faked"), ("R5", "vcpu-affinity-offered"),
    ("R6", "false-isolation-claim"), ("R7", "iort-its-token"),
    ("R7", "msi-domain-not-from-firmware"), ("R9", "not-the-first-cpu"),
    ("R10", "move-not-written"),
}

# One 1-vector function allocated before a MultiMSI one: the RFC's one-at-a-time LPIs
# leave the block unaligned (Direct LPI's buddy allocator cannot).
AFTER_ONE = {
    "devices": [{"kind": "pci", "name": "one", "bdf": "0000:00:01.0", "msi_vectors": 1,
                 "driver": {"flags": ["msi"]}},
                {"kind": "pci", "name": "multi", "bdf": "0000:00:02.0", "msi_vectors": 4,
                 "driver": {"flags": ["msi"]}}],
    "steps": [{"at": 1, "do": "raise", "device": "multi", "vector": "all"}],
}


@pytest.fixture(scope="module")
def replay() -> RunReport:
    return run_scenario(provider="rfc-v1")


def labels(report: RunReport) -> set[tuple[str, str]]:
    return {(f.objection, f.finding) for f in report.findings}


@pytest.mark.parametrize("objection,finding", sorted(DEFAULT_RUN))
def test_the_replay_trips_the_objection(replay: RunReport, objection: str,
                                        finding: str) -> None:
    assert (objection, finding) in labels(replay)
    text = replay.render()
    assert f'{objection} "{FINDINGS[finding][1]}" -- {finding}:' in text
    doc = replay.as_dict()
    assert any(f["objection"] == objection and f["finding"] == finding
               and f["quote"] == FINDINGS[finding][1] for f in doc["review_findings"])


def test_both_faked_pending_states_are_seen(replay: RunReport) -> None:
    faked = [f for f in replay.findings if f.finding == "pending-state-faked"]
    assert sorted((f.device, f.detail.split(" on ")[0]) for f in faked) == [
        ("dma", "irq_inject_interrupt (irq_retrigger)"),
        ("legacy", "irq_set_irqchip_state(PENDING, true)")]


def test_the_replay_trips_nothing_else_and_fails(replay: RunReport) -> None:
    assert labels(replay) == DEFAULT_RUN
    assert not replay.ok and replay.as_dict()["ok"] is False
    assert replay.as_dict()["platform"]["msi_provider"] == "rfc-v1+mbi"


def test_the_probe_does_not_rewrite_the_scenarios_own_spoof(replay: RunReport) -> None:
    # The scenario's spoof wrote the victim's (event-ID) message: it reached nobody.  The
    # review's probe, writing the victim's LPI, did.
    doc = replay.as_dict()
    assert [a["reached_victim"] for a in doc["security"]["spoof_attempts"]] == [False]
    probe = next(f for f in replay.findings if f.finding == "false-isolation-claim")
    assert probe.seen_by == "probe" and "its handler ran" in probe.detail
    assert "vfio_assign() took nic" in probe.detail
    assert doc["security"]["msi_isolation"] is True


@pytest.mark.parametrize("board,provider", [(None, None), (None, "direct-lpi"),
                                            ("its.dts", None), ("mbi-only.dts", None),
                                            ("gicv2m.dts", None), ("hyperv-spi.dts", None)])
def test_the_real_providers_trip_no_objection(board: str | None, provider: str | None) -> None:
    report = run_scenario(platform=None if board is None else BOARDS / board,
                          provider=provider)
    assert report.findings == [] and report.ok
    assert report.as_dict()["review_findings"] == []
    assert "no objection of the review tripped" in report.render()


def test_an_unaligned_multimsi_block_is_seen() -> None:
    found = {f.finding: f for f in run_scenario(AFTER_ONE, provider="rfc-v1").findings}
    unaligned = found["multimsi-block-unaligned"]
    assert unaligned.objection == "R3" and "[8193, 8194, 8195, 8196]" in unaligned.detail
    assert run_scenario(AFTER_ONE).findings == []


def test_chosen_without_firmware_is_seen_on_an_mbi_board() -> None:
    report = run_scenario(platform=BOARDS / "mbi-only.dts", provider="rfc-v1")
    assert ("R7", "direct-lpi-without-firmware") in labels(report)
    assert ("R7", "msi-domain-not-from-firmware") in labels(report)


class RealPendingState(RfcV1):
    """The RFC with R4 answered: pending state written to the target RD's GICR_SETLPIR."""

    def set_irqchip_state(self, d: IrqData, which: int, value: bool) -> None:
        dev = d.chip_data
        self.lpi.set_pending(dev.col_map[dev.event_of(d)], d.hwirq)


def test_findings_come_from_behaviour_not_from_the_providers_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rfc_v1, "RfcV1", RealPendingState)
    report = ScenarioRun(load_scenario(DEFAULT_SCENARIO), provider="rfc-v1").run()
    assert ("R4", "pending-state-faked") not in labels(report)
    assert labels(report) == DEFAULT_RUN - {("R4", "pending-state-faked")}


def test_a_stale_message_violation_is_labelled_r10(monkeypatch: pytest.MonkeyPatch) -> None:
    # A move the device never hears of, caught by the checker when the device writes.
    from directlpi.kernel.irqchip import direct_lpi
    from tests.sim.test_invariants import NoMessageRewrite
    monkeypatch.setattr(direct_lpi, "DirectLpi", NoMessageRewrite)
    sc = parse_scenario({
        "devices": [{"kind": "pci", "name": "nic", "bdf": "0000:00:01.0",
                     "msix_vectors": 1, "driver": {"flags": ["msix"]}}],
        "steps": [{"at": 1, "do": "set_affinity", "device": "nic", "vector": 0, "cpus": [1]},
                  {"at": 2, "do": "raise", "device": "nic"}]})
    doc = ScenarioRun(sc, cpus=2).run().as_dict()
    stale = [v for v in doc["violations"] if v["invariant"] == "stale-message"]
    assert stale and all(v["review"] == "R10" for v in stale)
    assert ("R10", "move-not-written") in {(f["objection"], f["finding"])
                                           for f in doc["review_findings"]}


# -- the command line ---------------------------------------------------------------------------

def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["run", *argv])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_cli_rfc_v1_exits_1_with_the_labelled_objections(
        capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _err = run_cli(capsys, "--provider", "rfc-v1")
    assert status == 1
    review = out.split("review (the 2021 RFC review's objections", 1)[1]
    assert {ln.split()[0] for ln in review.splitlines()[1:] if ln.strip()} == {
        o for o, _f in DEFAULT_RUN}


@pytest.mark.parametrize("argv", [(), ("--provider", "direct-lpi")])
def test_cli_the_real_provider_exits_0(capsys: pytest.CaptureFixture[str],
                                       argv: tuple[str, ...]) -> None:
    status, out, _err = run_cli(capsys, *argv)
    assert status == 0 and "no objection of the review tripped" in out


@pytest.mark.parametrize("argv,needle", [
    (("--provider", "rfc-v2"), "--provider rfc-v2: unknown MSI provider (known: direct-lpi, "
                               "rfc-v1)"),
    (("--provider", "rfc-v1", "--platform", str(BOARDS / "its.dts")),
     "does not offer MSI provider 'rfc-v1'"),
    (("--provider", "direct-lpi", "--platform", str(BOARDS / "mbi-only.dts")),
     "Direct LPI not described by firmware"),
])
def test_cli_a_provider_it_cannot_use_is_one_line_and_exit_2(
        capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], needle: str) -> None:
    status, out, err = run_cli(capsys, *argv)
    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("directlpi: error: ") and needle in err


def test_cli_json_carries_the_labels(capsys: pytest.CaptureFixture[str]) -> None:
    import json
    status, out, _err = run_cli(capsys, "--provider", "rfc-v1", "--json")
    doc: dict[str, Any] = json.loads(out)
    assert status == 1 and doc["ok"] is False
    assert {(f["objection"], f["finding"]) for f in doc["review_findings"]} == DEFAULT_RUN
