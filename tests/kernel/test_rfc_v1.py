"""The RFC v1 replay behaves as the 2021 RFC did: each test pins one behaviour the review
objected to (DESIGN.md's R-numbers), seen at the device, the hardware or the kernel API."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from directlpi import EventKind, Platform
from directlpi.devices.pci import PciFunction
from directlpi.errors import DirectLPIError
from directlpi.hw.events import Event
from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.chip import IRQCHIP_STATE_PENDING
from directlpi.kernel.irq.desc import IRQ_HANDLED
from directlpi.kernel.kernel import BootParams, Kernel
from directlpi.kernel.pci import PCI_IRQ_MSI, PCI_IRQ_MSIX
from directlpi.sim.review import boot

BOARDS = Path(__file__).resolve().parents[2] / "src" / "directlpi" / "boards"
SETLPIR = 0x40


def rfc(plat: Platform | None = None) -> tuple[Platform, Kernel]:
    plat = plat or Platform.default(cpus=4)
    return plat, boot(plat, "rfc-v1")


def vectors(plat: Platform, kern: Kernel, bdf: str, flags: int, n: int,
            **fn: Any) -> tuple[PciFunction, list[int], list[int]]:
    """A function with ``n`` vectors requested; (function, virqs, handler runs by vector)."""
    dev = plat.add_pci_device(bdf, **fn)
    got = kern.pci_alloc_irq_vectors(dev, n, n, flags)
    virqs = [kern.pci_irq_vector(dev, i) for i in range(got)]
    runs: list[int] = []
    for i, v in enumerate(virqs):
        kern.request_irq(v, lambda irq, dev_id, i=i: runs.append(i) or IRQ_HANDLED,
                         name=f"{bdf}-{i}", dev_id=i)
    return dev, virqs, runs


def intid(kern: Kernel, virq: int) -> int:
    desc = kern.irq_to_desc(virq)
    assert desc is not None
    return desc.levels()[-1].hwirq


def test_boot_parameter_selects_it_and_refuses_unknown_names() -> None:
    _plat, kern = rfc()
    assert kern.msi_provider.split("+")[0] == "rfc-v1" and kern.direct_lpi is None
    with pytest.raises(KernelError) as exc:
        BootParams(msi_provider="rfc-v2")
    assert exc.value.errno == errno.EINVAL and "direct-lpi, rfc-v1" in str(exc.value)


def test_r1_the_message_data_is_an_event_id_and_names_no_lpi() -> None:
    plat, kern = rfc()
    dev, virqs, runs = vectors(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 4, msix_vectors=4)
    assert [dev.msi_message(i)[1] for i in range(4)] == [0, 1, 2, 3]      # EventIDs
    assert all(intid(kern, v) >= 8192 for v in virqs)                   # its LPIs
    ignored: list[Event] = []
    plat.observe(ignored.append, [EventKind.IGNORED])
    dev.raise_msi(2)
    plat.run_until_idle()
    assert runs == []
    assert [(e.intid, e.reason) for e in ignored if e.register == "GICR_SETLPIR"] == [
        (2, "unimplemented-intid")]


def test_r9_activation_picks_the_least_loaded_cpu() -> None:
    plat, kern = rfc()
    _dev, virqs, _runs = vectors(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 4, msix_vectors=4)
    assert [kern.irq_get_effective_affinity(v) for v in virqs] == [{0}, {1}, {2}, {3}]
    assert all(kern.irq_get_affinity(v) == frozenset(range(4)) for v in virqs)


def test_r10_an_affinity_move_never_reaches_the_device() -> None:
    plat, kern = rfc()
    dev, virqs, _runs = vectors(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    before = dev.msi_message(0)
    assert before[0] == plat.gicr_base(0) + SETLPIR
    kern.irq_set_affinity(virqs[0], {3})
    assert kern.irq_get_effective_affinity(virqs[0]) == {3}
    assert dev.msi_message(0) == before                      # still CPU0's GICR_SETLPIR


def test_r3_a_multimsi_block_has_one_address_but_its_vectors_other_cpus() -> None:
    plat, kern = rfc()
    dev, virqs, _runs = vectors(plat, kern, "0000:00:02.0", PCI_IRQ_MSI, 4, msi_vectors=4)
    assert {dev.msi_message(i)[0] for i in range(4)} == {plat.gicr_base(0) + SETLPIR}
    assert [min(kern.irq_get_effective_affinity(v)) for v in virqs] == [0, 1, 2, 3]


def test_r3_a_multimsi_block_is_not_one_aligned_run_of_intids() -> None:
    plat, kern = rfc()
    vectors(plat, kern, "0000:00:01.0", PCI_IRQ_MSI, 1, msi_vectors=1)
    _dev, virqs, _runs = vectors(plat, kern, "0000:00:02.0", PCI_IRQ_MSI, 4, msi_vectors=4)
    assert [intid(kern, v) for v in virqs] == [8193, 8194, 8195, 8196]   # not 4-aligned


def test_r4_pending_state_and_retrigger_succeed_and_do_nothing() -> None:
    plat, kern = rfc()
    _dev, virqs, runs = vectors(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    made_pending: list[Event] = []
    plat.observe(made_pending.append, [EventKind.LPI_PENDING])
    kern.irq_set_irqchip_state(virqs[0], IRQCHIP_STATE_PENDING, True)     # no error
    kern.irq_inject_interrupt(virqs[0])                                  # no error
    plat.run_until_idle()
    assert made_pending == [] and runs == []


def test_r5_a_vcpu_affinity_callback_that_refuses() -> None:
    plat, kern = rfc()
    _dev, virqs, _runs = vectors(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    desc = kern.irq_to_desc(virqs[0])
    assert desc is not None
    level = next(lv for lv in desc.levels()
                 if lv.chip is not None and lv.chip.irq_set_vcpu_affinity is not None)
    assert level.chip is not None and level.chip.irq_set_vcpu_affinity is not None
    with pytest.raises(KernelError) as exc:
        level.chip.irq_set_vcpu_affinity(level, None)
    assert exc.value.errno == errno.EINVAL


def test_r6_isolation_is_claimed_and_vfio_takes_the_device() -> None:
    plat, kern = rfc()
    dev, _virqs, _runs = vectors(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    assert kern.msi_isolated(dev)
    kern.vfio_assign(dev)                                  # no allow_unsafe_interrupts
    assert "0000:00:01.0" in kern.assigned


def test_r7_registered_as_iort_its_0_without_any_its() -> None:
    _plat, kern = rfc()
    assert kern.board.gic.its == ()
    assert list(kern.iort_domain_tokens) == [0]
    assert kern.iort_domain_tokens[0][1].name == "Direct LPI"


def test_r7_chosen_by_the_absence_of_an_its_whatever_firmware_says() -> None:
    plat = Platform.from_devicetree(BOARDS / "mbi-only.dts")
    assert not plat.board.gic.direct_lpi
    plat, kern = rfc(plat)
    dev, _virqs, _runs = vectors(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    assert dev.msi_message(0)[0] == plat.gicr_base(0) + SETLPIR     # not GICD_SETSPI_NSR
    assert Platform.from_devicetree(BOARDS / "mbi-only.dts").boot().msi_provider == "mbi"


@pytest.mark.parametrize("board,why", [("its.dts", "an ITS was found"),
                                       ("rds-without-directlpi.dts", "GICR_TYPER.DirectLPI")])
def test_it_stays_out_with_an_its_or_without_directlpi_rds(board: str, why: str) -> None:
    plat = Platform.from_devicetree(BOARDS / board)
    with pytest.raises(DirectLPIError) as exc:
        boot(plat, "rfc-v1")
    assert exc.value.errno == errno.ENODEV and why in str(exc.value)


def test_kexec_keeps_the_provider_the_old_kernel_booted_with() -> None:
    from directlpi import Platform
    from directlpi.sim.review import boot
    plat = Platform.default(cpus=2)
    assert boot(plat, "rfc-v1").msi_provider.startswith("rfc-v1")
    assert plat.kexec().msi_provider.startswith("rfc-v1")
