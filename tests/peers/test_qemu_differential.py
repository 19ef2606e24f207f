"""The model against QEMU's GICv3, register by register (issue 11, "QEMU in the tests").

Every scenario of tests/peers/scenarios.py runs on one QEMU (started once for this
module, reset between scenarios) and on a fresh ``Platform.bare`` built as QEMU's board;
every load and system-register access is compared.  A divergence must be one of the
classified ones (tests/peers/divergences.py, docs/hardware-model.md); a new one fails,
naming the scenario, the step, the register and both values.  Without QEMU or the cross
binutils the tests fail and say what to install: they never skip.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

import pytest

from tests.peers.divergences import CONFIGURATION, KNOWN, Configured, classify
from tests.peers.model import QEMU_VIRT, ModelGic
from tests.peers.qemu_harness import PeerUnavailable, QemuGic, missing_tools
from tests.peers.scenarios import CPUS, SCENARIOS, Observation, Scenario, run

Runs = dict[str, list[Observation]]


@pytest.fixture(scope="module")
def qemu_runs() -> Iterator[Runs]:
    """Every scenario's observations on QEMU (one QEMU process for the module)."""
    problem = missing_tools()
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    try:
        with QemuGic(CPUS) as qemu:
            runs: Runs = {}
            for scenario in SCENARIOS:
                qemu.reset()
                runs[scenario.name] = run(scenario, qemu)
    except PeerUnavailable as e:
        pytest.fail(f"QEMU could not run the differential test: {e}", pytrace=False)
    yield runs


def model_run(scenario: Scenario, **options: Any) -> list[Observation]:
    return run(scenario, ModelGic(CPUS, **{**QEMU_VIRT, **options}))


def fmt(v: int | str) -> str:
    return v if isinstance(v, str) else f"{v:#x}"


def divergences(scenario: Scenario, qemu: list[Observation],
                model: list[Observation]) -> list[tuple[Observation, Observation]]:
    assert [(o.step, o.what) for o in qemu] == [(o.step, o.what) for o in model]
    return [(q, m) for q, m in zip(qemu, model, strict=True) if q.value != m.value]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_every_divergence_is_classified(scenario: Scenario, qemu_runs: Runs) -> None:
    model = model_run(scenario)
    unclassified = [
        f"{scenario.name} step {q.step}: {q.what}: QEMU {fmt(q.value)}, directlpi "
        f"{fmt(m.value)}"
        for q, m in divergences(scenario, qemu_runs[scenario.name], model)
        if classify(scenario.name, q.what, q.value, m.value) is None]
    assert not unclassified, "unclassified divergence(s) from QEMU:\n" + "\n".join(unclassified)


def test_the_scenarios_compare_enough(qemu_runs: Runs) -> None:
    """The comparison is not vacuous: many reads, most of them equal and not all zero."""
    observations = [o for runs in qemu_runs.values() for o in runs]
    assert len(observations) > 1000
    assert sum(1 for o in observations if o.value not in (0, 1023, "ok")) > 500
    names = {o.what.split("@")[0] for o in observations}
    for register in ("ICC_IAR1_EL1", "ICC_EOIR1_EL1", "ICC_HPPIR1_EL1", "ICC_RPR_EL1",
                     "ICC_DIR_EL1", "ICC_AP1R0_EL1", "ICC_SGI0R_EL1", "ICC_ASGI1R_EL1",
                     "GICR0_PROPBASER", "GICD_IROUTER32", "GICR1_IPRIORITYR0"):
        assert any(n == register or n.endswith(" " + register) for n in names), register


def test_every_classified_divergence_still_occurs(qemu_runs: Runs) -> None:
    """A classification that no longer matches anything is stale (QEMU or the model changed):
    it must be removed, with its row in docs/hardware-model.md."""
    seen: set[str] = set()
    for scenario in SCENARIOS:
        for q, m in divergences(scenario, qemu_runs[scenario.name], model_run(scenario)):
            known = classify(scenario.name, q.what, q.value, m.value)
            if known is not None:
                seen.add(known.key)
    assert sorted(k.key for k in KNOWN if k.key not in seen) == []


@pytest.mark.parametrize("choice", CONFIGURATION, ids=[c.option for c in CONFIGURATION])
def test_each_configured_choice_is_what_removes_its_divergence(choice: Configured,
                                                               qemu_runs: Runs) -> None:
    """With the model's own choice for this one option, the registers it names diverge
    (so the option is needed, and is what the documentation says it is)."""
    assert QEMU_VIRT[choice.option] == choice.qemu
    seen = []
    for scenario in SCENARIOS:
        model = model_run(scenario, **{choice.option: choice.default})
        for q, m in divergences(scenario, qemu_runs[scenario.name], model):
            if (classify(scenario.name, q.what, q.value, m.value) is None
                    and any(fnmatchcase(q.what, p) for p in choice.registers)):
                seen.append(q.what)
    assert seen, f"{choice.option}={choice.default!r} shows no divergence in {choice.registers}"


def test_missing_tools_fail_with_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which

    def which(cmd: str, *args: Any, **kwargs: Any) -> str | None:
        return None if cmd.startswith("aarch64-") else real_which(cmd, *args, **kwargs)

    monkeypatch.setattr(shutil, "which", which)
    problem = missing_tools()
    assert problem is not None and "binutils-aarch64-linux-gnu" in problem
    assert "qemu-system-arm" not in problem
    with pytest.raises(PeerUnavailable, match="apt-get install binutils-aarch64-linux-gnu"):
        QemuGic(CPUS)


def test_the_model_side_is_deterministic() -> None:
    """Two fresh models give the same observations (the comparison depends on nothing else)."""
    scenario = next(s for s in SCENARIOS if s.name == "lpi-pending-table")
    assert model_run(scenario) == model_run(scenario)
