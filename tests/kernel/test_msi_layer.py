"""The MSI layer: pci_alloc_irq_vectors, messages written to devices, platform MSI."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.desc import IRQ_HANDLED
from directlpi.kernel.kernel import Kernel
from directlpi.kernel.msi import MsiDesc, MsiMsg
from directlpi.kernel.pci import PCI_IRQ_AFFINITY, PCI_IRQ_MSI, PCI_IRQ_MSIX

BDF = "0000:00:01.0"


def request_all(kern: Kernel, virqs: list[int]) -> dict[int, list[int]]:
    runs: dict[int, list[int]] = {v: [] for v in virqs}
    for v in virqs:
        kern.request_irq(v, lambda irq, d: runs[irq].append(kern.this_cpu) or IRQ_HANDLED,
                         name=f"v{v}")
    return runs


def test_msix_is_tried_before_msi_and_vectors_are_numbered(booted_default: Any) -> None:
    plat, kern = booted_default
    fn = plat.add_pci_device(BDF, msi_vectors=4, msix_vectors=6)
    n = kern.pci_alloc_irq_vectors(fn, 1, 8, PCI_IRQ_MSI | PCI_IRQ_MSIX)
    assert n == 6 and fn.msix_enabled and not fn.msi_enabled
    virqs = [kern.pci_irq_vector(fn, i) for i in range(n)]
    assert virqs == list(range(virqs[0], virqs[0] + 6))
    with pytest.raises(KernelError) as exc:
        kern.pci_irq_vector(fn, 6)
    assert exc.value.errno == errno.EINVAL


def test_msi_when_msix_is_not_asked_for(booted_default: Any) -> None:
    plat, kern = booted_default
    fn = plat.add_pci_device(BDF, msi_vectors=4, msix_vectors=6)
    assert kern.pci_alloc_irq_vectors(fn, 1, 3, PCI_IRQ_MSI) == 3
    assert fn.msi_enabled and fn.msi_enabled_vectors == 4       # MME rounds up


def test_too_few_vectors_is_enospc_and_double_alloc_is_einval(booted_default: Any) -> None:
    plat, kern = booted_default
    fn = plat.add_pci_device(BDF, msi_vectors=2)
    with pytest.raises(KernelError) as exc:
        kern.pci_alloc_irq_vectors(fn, 4, 8, PCI_IRQ_MSI)
    assert exc.value.errno == errno.ENOSPC and not fn.msi_enabled
    kern.pci_alloc_irq_vectors(fn, 1, 2, PCI_IRQ_MSI)
    with pytest.raises(KernelError) as exc:
        kern.pci_alloc_irq_vectors(fn, 1, 2, PCI_IRQ_MSI)
    assert exc.value.errno == errno.EINVAL


def test_messages_reach_the_device_and_match_the_cache(booted_default: Any) -> None:
    plat, kern = booted_default
    fn = plat.add_pci_device(BDF, msix_vectors=4)
    kern.pci_alloc_irq_vectors(fn, 4, 4, PCI_IRQ_MSIX)
    for i in range(4):
        msg = kern.get_cached_msi_msg(kern.pci_irq_vector(fn, i))
        assert fn.msi_message(i) == (msg.address, msg.data)


def test_vectors_are_masked_until_requested(booted_default: Any) -> None:
    plat, kern = booted_default
    fn = plat.add_pci_device(BDF, msix_vectors=2)
    kern.pci_alloc_irq_vectors(fn, 2, 2, PCI_IRQ_MSIX)
    assert not fn.raise_msi(0) and fn.msix_pending(0)            # device-level mask
    runs = request_all(kern, [kern.pci_irq_vector(fn, 0)])
    plat.run_until_idle(verify=True)
    assert list(runs.values()) == [[0]]                          # the pending one went out


def test_free_needs_free_irq_first_then_everything_goes(booted_default: Any) -> None:
    plat, kern = booted_default
    fn = plat.add_pci_device(BDF, msi_vectors=4)
    kern.pci_alloc_irq_vectors(fn, 4, 4, PCI_IRQ_MSI)
    virqs = [kern.pci_irq_vector(fn, i) for i in range(4)]
    request_all(kern, virqs[:1])
    with pytest.raises(KernelError) as exc:
        kern.pci_free_irq_vectors(fn)
    assert exc.value.errno == errno.EBUSY and str(virqs[0]) in str(exc.value)
    kern.free_irq(virqs[0])
    kern.pci_free_irq_vectors(fn)
    assert not fn.msi_enabled and kern.irq_to_desc(virqs[0]) is None
    assert kern.lpi is not None and kern.lpi.allocator is not None
    assert kern.lpi.allocator.allocated_count == 0
    assert kern.pci_alloc_irq_vectors(fn, 1, 4, PCI_IRQ_MSI) == 4   # and again


def test_managed_msix_vectors_are_spread(booted_default: Any) -> None:
    plat, kern = booted_default
    fn = plat.add_pci_device(BDF, msix_vectors=8)
    kern.pci_alloc_irq_vectors(fn, 8, 8, PCI_IRQ_MSIX | PCI_IRQ_AFFINITY)
    virqs = [kern.pci_irq_vector(fn, i) for i in range(8)]
    request_all(kern, virqs)
    assert [kern.irq_get_effective_affinity(v) for v in virqs] == [{c} for c in range(8)]


def test_a_failed_platform_msi_activation_undoes_what_it_did(booted_default: Any) -> None:
    """Activation of the second vector fails (its redistributor's GICR_SYNCR, say): the
    first, already activated and programmed, is deactivated (its slot written a zero
    message) and everything is freed, as msi_domain_alloc_irqs' cleanup does."""
    plat, kern = booted_default
    dev = plat.add_platform_device("dma", slots=2)
    seen: list[tuple[int, int, int]] = []

    def write_msg(desc: MsiDesc, msg: MsiMsg) -> None:
        seen.append((desc.msi_index, msg.address, msg.data))
        if desc.msi_index == 1 and msg.address:
            raise KernelError("slot 1 cannot be programmed", errno.ETIMEDOUT)
        dev.program_slot(desc.msi_index, msg.address, msg.data)

    before = set(kern.irq.active_descs())
    with pytest.raises(KernelError, match="slot 1"):
        kern.platform_msi_domain_alloc_irqs(dev, 2, write_msg)
    assert seen[0][0] == 0 and seen[0][1] != 0
    assert seen[-1] == (0, 0, 0)                    # slot 0 deactivated again
    assert dev.slots == [(0, 0), (0, 0)]
    assert set(kern.irq.active_descs()) == before   # nothing left allocated
    assert kern.msi_irqs_of("dma") == []


def test_platform_msi_programs_slots_through_the_callback(booted_default: Any) -> None:
    plat, kern = booted_default
    dev = plat.add_platform_device("dma", slots=3)
    seen: list[tuple[int, int, int]] = []

    def write_msg(desc: MsiDesc, msg: MsiMsg) -> None:
        seen.append((desc.msi_index, msg.address, msg.data))
        dev.program_slot(desc.msi_index, msg.address, msg.data)

    virq = kern.platform_msi_domain_alloc_irqs(dev, 3, write_msg)
    assert [s[0] for s in seen] == [0, 1, 2]
    runs = request_all(kern, [virq + 1])
    assert dev.raise_msi(1)
    plat.run_until_idle(verify=True)
    assert runs[virq + 1] == [0]
    kern.free_irq(virq + 1)
    kern.platform_msi_domain_free_irqs(dev)
    assert seen[-1][1:] == (0, 0)                                # deactivation cleared the slot
    with pytest.raises(KernelError):
        kern.platform_msi_domain_free_irqs(dev)
