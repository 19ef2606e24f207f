"""Hyper-V vPCI MSIs on arm64: guest SPIs the host routes (Linux
``drivers/pci/controller/pci-hyperv.c``; facts in ``shared/facts/linux-gicv3.md`` §4).

The route Microsoft took when Direct LPI was turned down ("If time is of the essence,
I suggest you go the SPI way"):

* **Domains** as Linux has them: ``hv_vpci_arm64`` (956 SPIs) under the GIC domain, its
  chip "MSI" passing everything to the GIC's SPI chip; the vPCI bus's PCI-MSI domain
  (``HV-PCI-MSI``, MSI-X and MultiMSI) on top.  The parent is the VMBus node's
  interrupt parent, which must be the GICv3 ("Invalid firmware configuration for VMBus
  interrupts" otherwise).
* **SPIs** from the driver's own range, 64..1019 (``HV_PCI_MSI_SPI_START``,
  ``HV_PCI_MSI_SPI_NR`` = 956), in power-of-two blocks aligned to their size
  (``bitmap_find_free_region``: bottom-up, first fit).  The SPI is configured edge.
* **The message is the host's.**  Composing a vector's message sends the host a
  *create interrupt* (the SPI, the vector count, a CPU) over the hypervisor channel;
  the host routes the function's interrupt to that SPI, programs the function's real
  MSI itself, and replies with the message -- the host's doorbell and a handle --
  which the PCI/MSI layer then writes, as ever, into the (host-emulated) capability.
  MultiMSI: only the block's first vector asks, for the whole block; vector k is the
  first's data + k; composed again, the block keeps its interrupt.  Any other vector
  composed again first deletes its previous interrupt (``hv_int_desc_free``); freeing
  deletes it (``hv_teardown_msi_irq``).
* **Affinity** is the SPI's ``GICD_IROUTER`` (``irq_chip_set_affinity_parent`` at every
  level): no message to the host, the device is never rewritten.  Masking is the
  function's mask and ``GICD_ICENABLER``; pending state and retrigger are the GIC's.
* **Bus state**: the driver enters D0 before any interrupt (the host routes nothing
  otherwise); a kernel started by kexec finds the bus still in D0 (``EPROTO``) and, as
  Linux's "retry PCI bus D0 entry on invalid device state" does for kdump, exits D0 --
  the host deletes its predecessor's interrupts -- and enters again.
* **Isolation** is the host's: a device's write is looked up in what the host granted
  *that* device.  The guest kernel claims nothing (no ``IRQ_DOMAIN_FLAG_ISOLATED_MSI``,
  as Linux): what the guest can see is only its own SPIs.

Where the model departs from Linux, by choice:

* A MultiMSI create names the block's first SPI and its size (a power of two, as the
  block is).  Linux's shared code sends a dummy vector 32 and ``nvec_used``, and on x86
  fixes the vector in ``unmask``; on arm64 ``hv_arch_irq_unmask`` is empty, so the host
  is never told the block's SPIs -- a gap upstream the model does not replay, since its
  host could not route the block without them.
* A refused create (the host's status) during allocation fails it with that errno
  (Linux logs it and leaves the message empty, so the vector never fires), and an SPI
  block the host refused as such (``EINVAL``, ``EBUSY``) is taken out of the driver's
  range, so the next allocation moves past it (Linux's dead vector holds it); refused when
  the vector is started again later (a CPU back online), it is logged and the message
  left empty, as Linux.  Freeing disables the SPI and discards its pending state, as the
  MBI provider does.
* The create's CPU is the first online one (Linux: the affinity's, round-robin for
  MultiMSI; the host routes nothing by it on arm64); ``wslot`` is the requester ID (Linux
  encodes the slot); the delete names the handle (Linux sends the whole descriptor);
  D0 entry is retried, after a D0 exit, on any failure (Linux: likewise).
* The channel is the model's hypercall frame (one message in guest RAM, its address
  and a signal written to the frame; the host replies in place), not VMBus's rings: the
  same round trip, polled as Linux polls it.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from directlpi.hw.regs import (
    HV,
    HV_HYPERCALL_BASE,
    HV_MSG_SIZE,
    HV_MSG_WORDS,
    HV_PCI_BUS_D0ENTRY,
    HV_PCI_BUS_D0EXIT,
    HV_PCI_CREATE_INTERRUPT,
    HV_PCI_DELETE_INTERRUPT,
)
from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.chip import irq_chip_set_affinity_parent
from directlpi.kernel.irq.desc import IrqData
from directlpi.kernel.irq.domain import DomainBusToken, Fwnode, IrqDomain
from directlpi.kernel.irqchip.gic_v3_mbi import MbiAllocator, SpiMsi
from directlpi.kernel.msi import (
    MSI_FLAG_MULTI_PCI_MSI,
    MSI_FLAG_PCI_MSIX,
    MSI_FLAG_USE_DEF_CHIP_OPS,
    MSI_FLAG_USE_DEF_DOM_OPS,
    MsiDesc,
    MsiDomain,
    MsiDomainInfo,
    MsiMsg,
)

if TYPE_CHECKING:
    from directlpi.kernel.kernel import Kernel

HV_PCI_MSI_SPI_START = 64
HV_PCI_MSI_SPI_NR = 1020 - HV_PCI_MSI_SPI_START
_OFF = {name: 4 * i for i, name in enumerate(HV_MSG_WORDS)}


@dataclass(frozen=True)
class IntDesc:
    """The host's answer to a create interrupt (``struct tran_int_desc``)."""

    spi: int
    count: int
    address: int
    data: int


class HvChannel:
    """The guest's end of the hypervisor channel: one message buffer in guest RAM."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        self.buffer = kernel.mm.alloc(HV_MSG_SIZE, align=64)
        #: Messages sent: (type, status).
        self.sent: list[tuple[int, int]] = []

    def call(self, **words: int) -> dict[str, int]:
        """Send one message (the words given; the others 0) and return the reply."""
        k, buf = self.k, self.buffer
        for name, off in _OFF.items():
            k.ram.write_int(buf + off, words.get(name, 0), 4)
        k.writeq(buf, HV_HYPERCALL_BASE + HV.MSG_GPA.offset)
        k.writel(1, HV_HYPERCALL_BASE + HV.SIGNAL.offset)
        reply = {name: k.ram.read_int(buf + _OFF[name], 4)
                 for name in ("status", "address_lo", "address_hi", "data")}
        self.sent.append((words.get("type", 0), reply["status"]))
        return reply


class HvPciMsiDomain(MsiDomain):
    """The vPCI bus's PCI-MSI domain: freeing a vector deletes its host interrupt."""

    def __init__(self, hv: HvVpci, *args: Any) -> None:
        self.hv = hv
        super().__init__(*args)

    def _free(self, domain: IrqDomain, virq: int, nr_irqs: int) -> None:
        for i in range(nr_irqs):
            self.hv.teardown(virq + i)
        super()._free(domain, virq, nr_irqs)


class HvVpci(SpiMsi):
    """The vPCI MSI provider of one kernel (``hv_pci_irqchip_init`` and the bus's domain)."""

    NAME = "hv_vpci_arm64"
    CHIP_NAME = "MSI"
    COMPOSES = False

    def __init__(self, kernel: Kernel, bus_fwnode: Fwnode) -> None:
        self.bus_fwnode = bus_fwnode
        self.channel = HvChannel(kernel)
        #: The host's interrupt behind each virq that asked for one (a MultiMSI block's
        #: first vector; each MSI-X vector).
        self.int_desc: dict[int, IntDesc] = {}
        #: SPI blocks the host refused to route (EINVAL, EBUSY) while allocating: taken
        #: out of the allocator once the failed allocation has freed them.
        self.refused: list[tuple[int, int]] = []
        ranges = ((HV_PCI_MSI_SPI_START, HV_PCI_MSI_SPI_NR),)
        super().__init__(kernel, Fwnode("hv_vpci_arm64"), ranges, "HV",
                         MbiAllocator(ranges, self.NAME, "its SPI range 64..1019"))

    def _msi_domains(self, kernel: Kernel, fwnode: Fwnode, prefix: str) -> None:
        chip = kernel.pci.msi_chip("HV-PCI-MSI", irq_chip_set_affinity_parent)
        chip.irq_compose_msi_msg = self.compose
        flags = (MSI_FLAG_USE_DEF_DOM_OPS | MSI_FLAG_USE_DEF_CHIP_OPS | MSI_FLAG_MULTI_PCI_MSI
                 | MSI_FLAG_PCI_MSIX)
        self.pci = HvPciMsiDomain(self, kernel.irq, "HV-PCI-MSI", self.bus_fwnode,
                                  MsiDomainInfo(flags, chip), self.nexus,
                                  DomainBusToken.PCI_MSI)

    def doorbell(self, spi: int) -> int | None:
        return None                 # the host's reply says where the device writes

    def _free(self, domain: IrqDomain, virq: int, nr_irqs: int) -> None:
        super()._free(domain, virq, nr_irqs)
        while self.refused:
            spi, count = self.refused.pop()
            self.allocator.take_out(spi, count)
            self.k.log.warn(f"hv_vpci: SPIs {spi}..{spi + count - 1} refused by the host: "
                            "not used again")

    # -- hv_compose_msi_msg / hv_teardown_msi_irq -------------------------------------------------

    def compose(self, d: IrqData, msg: MsiMsg) -> None:
        desc: MsiDesc = d.common.msi_desc
        if not desc.is_msix and d.irq != desc.irq:
            first = self.int_desc.get(desc.irq)
            if first is None:
                raise KernelError(f"irq {d.irq}: the MultiMSI block's first vector has no "
                                  "host interrupt", errno.EINVAL)
            msg.address = first.address
            msg.data = first.data + (d.irq - desc.irq)
            return
        multi = not desc.is_msix and desc.nvec_used > 1
        kept = self.int_desc.get(d.irq)
        if kept is not None and multi:
            # A MultiMSI block keeps its host interrupt (Linux reuses data->chip_data).
            msg.address, msg.data = kept.address, kept.data
            return
        self.teardown(d.irq)
        parent = d.parent_data
        assert parent is not None
        count = 1 if desc.is_msix else 1 << desc.multiple
        dev: Any = desc.dev
        reply = self.channel.call(type=HV_PCI_CREATE_INTERRUPT, wslot=dev.dev_id,
                                  vector=parent.hwirq, vector_count=count,
                                  cpu=min(self.k.irq.online), index=desc.msi_index)
        if reply["status"]:
            name = errno.errorcode.get(reply["status"], str(reply["status"]))
            text = (f"hv_vpci: pci {dev.bdf}: the host refused to route SPI {parent.hwirq} "
                    f"(+{count}): {name} ({os.strerror(reply['status'])})")
            irq_desc = self.k.irq_to_desc(d.irq)
            if irq_desc is None or not irq_desc.actions:
                if reply["status"] in (errno.EINVAL, errno.EBUSY):
                    # The host will not route these SPIs: once the failed allocation has
                    # given them back, never pick them again (or every later allocation
                    # would stop on them).
                    self.refused.append((parent.hwirq, count))
                raise KernelError(text, reply["status"])       # allocating: fail it
            # Started again later (a CPU back online): nothing to fail, so as Linux the
            # message stays empty and the vector is dead.
            self.k.log.err(f"{text}: IRQ {d.irq} gets no interrupts")
            msg.address = msg.data = 0
            return
        address = reply["address_hi"] << 32 | reply["address_lo"]
        self.int_desc[d.irq] = IntDesc(parent.hwirq, count, address, reply["data"])
        msg.address = address
        msg.data = reply["data"]

    def teardown(self, virq: int) -> None:
        """Delete the host interrupt behind ``virq``, if it has one."""
        old = self.int_desc.pop(virq, None)
        if old is None:
            return
        desc = self.k.irq_to_desc(virq)
        msi = desc.irq_data.common.msi_desc if desc is not None else None
        dev: Any = msi.dev if msi is not None else None
        reply = self.channel.call(type=HV_PCI_DELETE_INTERRUPT,
                                  wslot=dev.dev_id if dev is not None else 0, vector=old.data)
        if reply["status"]:
            self.k.log.err(f"hv_vpci: the host could not delete the interrupt of IRQ {virq} "
                           f"(SPI {old.spi}): status {reply['status']}")


def hv_pci_init(kernel: Kernel) -> HvVpci | None:
    """``hv_pci_irqchip_init``: the vPCI MSI domains, when firmware names a VMBus whose
    interrupt parent is the GICv3 and the bus has a host bridge."""
    vmbus = kernel.board.vmbus
    if vmbus is None:
        return None
    gic = kernel.board.gic
    if vmbus.irq_parent is not gic.fwnode or kernel.gic.domain is None:
        kernel.log.warn("hv_vpci: Invalid firmware configuration for VMBus interrupts")
        return None
    hv = HvVpci(kernel, vmbus.fwnode)
    # hv_pci_enter_d0: a kernel started by kexec finds the bus still in D0 (the host kept
    # its predecessor's interrupts); as Linux does for kdump, leave D0 and enter again.
    if hv.channel.call(type=HV_PCI_BUS_D0ENTRY)["status"]:
        kernel.log.info("hv_vpci: the bus is still in D0 (a previous kernel): D0 exit, "
                        "then enter again")
        hv.channel.call(type=HV_PCI_BUS_D0EXIT)
        status = hv.channel.call(type=HV_PCI_BUS_D0ENTRY)["status"]
        if status:
            kernel.log.err(f"hv_vpci: the host refused D0 entry: status {status}")
            return None
    kernel.log.info(f"hv_vpci: MSIs as guest SPIs [{HV_PCI_MSI_SPI_START}:"
                    f"{HV_PCI_MSI_SPI_START + HV_PCI_MSI_SPI_NR - 1}], routed by the host")
    return hv
