"""DESIGN.md's public Python contract, run as written (outside tests rely on it)."""

from __future__ import annotations

from typing import Any

from directlpi import (
    IRQ_HANDLED,
    IRQ_NONE,
    IRQCHIP_STATE_PENDING,
    PCI_IRQ_MSI,
    PCI_IRQ_MSIX,
    Platform,
)


def test_the_design_snippet_runs() -> None:
    seen: list[tuple[int, Any]] = []

    def handler(irq: int, dev_id: Any) -> int:
        seen.append((irq, dev_id))
        return IRQ_HANDLED

    plat = Platform.default(cpus=8)
    kern = plat.boot()
    dev = plat.add_pci_device("0000:00:01.0", msi_vectors=4)
    n = kern.pci_alloc_irq_vectors(dev, 1, 4, PCI_IRQ_MSI)
    assert n == 4
    virq = kern.pci_irq_vector(dev, 0)
    kern.request_irq(virq, handler, name="eth0-rx0")
    dev.raise_msi(0)
    plat.run_until_idle()
    assert seen == [(virq, None)]
    kern.irq_set_affinity(virq, {3})
    assert kern.irq_get_effective_affinity(virq) == {3}
    kern.irq_set_irqchip_state(virq, IRQCHIP_STATE_PENDING, True)
    kern.cpu_offline(3)
    kern.cpu_online(3)
    plat.run_until_idle()
    assert len(seen) == 2
    text = kern.proc_interrupts()
    assert "eth0-rx0" in text and text.splitlines()[0].split()[0] == "CPU0"
    msg = kern.get_cached_msi_msg(virq)
    assert dev.msi_message(0) == (msg.address, msg.data)
    assert kern.msi_isolated(dev) is False
    assert IRQ_NONE == 0 and PCI_IRQ_MSIX


def test_the_hardware_snippet_runs() -> None:
    from directlpi.sim.bringup import bring_up, configure_lpi

    hw = Platform.bare(cpus=4, lpi_id_bits=16)
    tables = bring_up(hw)
    configure_lpi(hw, tables, 8192, invalidate=[1])
    hw.bus.write(hw.gicr_base(1) + 0x40, 8192, 4, master="0000:00:01.0")
    assert hw.cpu(1).read_sysreg("ICC_IAR1_EL1") == 8192


def test_errors_carry_an_errno() -> None:
    import errno

    from directlpi import KernelError
    plat = Platform.default(cpus=2)
    kern = plat.boot()
    try:
        kern.irq_set_affinity(999, {0})
    except KernelError as exc:
        assert exc.errno == errno.EINVAL
    else:
        raise AssertionError("no error")


def test_the_readme_snippets_run_as_written(capsys: Any) -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    scen, bare, stack, from_dt = re.findall(r"```python\n(.*?)```", readme, re.S)
    ns: dict[str, Any] = {}
    exec(compile(scen, "README.md", "exec"), ns)
    assert ns["report"].ok and ns["report"].as_dict()["platform"]["cpus"] == 4
    capsys.readouterr()
    ns = {}
    exec(compile(bare, "README.md", "exec"), ns)
    assert ns["hw"].cpu(1).read_sysreg("ICC_IAR1_EL1") == 1023    # nothing set up: spurious
    ns = {}
    exec(compile(stack, "README.md", "exec"), ns)
    kern, virq = ns["kern"], ns["virq"]
    assert ns["n"] == 8
    assert kern.irq_get_effective_affinity(virq) == {5}
    assert kern.get_cached_msi_msg(virq).address == ns["plat"].gicr_base(5) + 0x40
    assert "nic-0" in capsys.readouterr().out
    ns = {}
    exec(compile(from_dt, "README.md", "exec"), ns)
    assert ns["kern"].direct_lpi is None and ns["plat"].board.gic.msi_controller


def test_run_scenario_takes_a_file_a_dict_or_nothing_and_renders_in_a_notebook() -> None:
    import directlpi
    from directlpi.sim.scenario import ScenarioError

    default = directlpi.run_scenario(cpus=2)
    assert default.ok and default.as_dict()["scenario"] == "default"
    small = directlpi.run_scenario({
        "devices": [{"kind": "pci", "name": "n", "bdf": "0000:00:01.0", "msix_vectors": 2}],
        "steps": [{"at": 1, "do": "raise", "device": "n"}]})
    assert small.as_dict()["totals"]["handled"] == 2
    page = small._repr_html_()
    assert "every invariant holds" in page and "<pre>" in page and "raise(" in page
    try:
        directlpi.run_scenario({"steps": []})
    except ScenarioError as exc:
        assert "no devices" in str(exc)
    else:
        raise AssertionError("an empty scenario ran")
