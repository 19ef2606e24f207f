"""Interrupt descriptors (Linux ``include/linux/irq.h``, ``kernel/irq/irqdesc.c``).

An :class:`IrqDesc` is one Linux interrupt number (virq).  It owns one
:class:`IrqData` per irq domain level -- ``desc.irq_data`` is the outermost
(e.g. the PCI-MSI domain's), ``parent_data`` leads towards the root (the GIC) --
and one :class:`IrqCommonData` shared by all levels (state flags, affinity, MSI
descriptor).  Flag names and meanings follow Linux.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from directlpi.kernel.context import RANK_DESC, SpinLock

if TYPE_CHECKING:
    from directlpi.kernel.irq.chip import IrqChip
    from directlpi.kernel.irq.core import IrqCore
    from directlpi.kernel.irq.domain import IrqDomain

Cpumask = frozenset[int]

# Trigger types (include/linux/irq.h)
IRQ_TYPE_NONE: Final = 0x0
IRQ_TYPE_EDGE_RISING: Final = 0x1
IRQ_TYPE_EDGE_FALLING: Final = 0x2
IRQ_TYPE_EDGE_BOTH: Final = 0x3
IRQ_TYPE_LEVEL_HIGH: Final = 0x4
IRQ_TYPE_LEVEL_LOW: Final = 0x8
IRQ_TYPE_LEVEL_MASK: Final = IRQ_TYPE_LEVEL_HIGH | IRQ_TYPE_LEVEL_LOW
IRQ_TYPE_SENSE_MASK: Final = 0xF

# irq_data state (IRQD_*), kept in IrqCommonData.state
IRQD_TRIGGER_MASK: Final = 0xF
IRQD_SETAFFINITY_PENDING: Final = 1 << 8
IRQD_ACTIVATED: Final = 1 << 9
IRQD_NO_BALANCING: Final = 1 << 10
IRQD_PER_CPU: Final = 1 << 11
IRQD_AFFINITY_SET: Final = 1 << 12
IRQD_LEVEL: Final = 1 << 13
IRQD_WAKEUP_STATE: Final = 1 << 14
IRQD_MOVE_PCNTXT: Final = 1 << 15
IRQD_IRQ_DISABLED: Final = 1 << 16
IRQD_IRQ_MASKED: Final = 1 << 17
IRQD_IRQ_INPROGRESS: Final = 1 << 18
IRQD_WAKEUP_ARMED: Final = 1 << 19
IRQD_FORWARDED_TO_VCPU: Final = 1 << 20
IRQD_AFFINITY_MANAGED: Final = 1 << 21
IRQD_IRQ_STARTED: Final = 1 << 22
IRQD_MANAGED_SHUTDOWN: Final = 1 << 23
IRQD_SINGLE_TARGET: Final = 1 << 24
IRQD_DEFAULT_TRIGGER_SET: Final = 1 << 25
IRQD_CAN_RESERVE: Final = 1 << 26
IRQD_HANDLE_ENFORCE_IRQCTX: Final = 1 << 27
IRQD_AFFINITY_ON_ACTIVATE: Final = 1 << 28
IRQD_RESEND_WHEN_IN_PROGRESS: Final = 1 << 30
"""It fired on one CPU while its handler still ran on another (an affinity change
raced with its handling): mark it pending and resend it when that handler is done,
instead of dropping it (Linux 6.5+, set by the GICv3 ITS for LPIs)."""

# desc.istate (IRQS_*, kernel/irq/internals.h)
IRQS_AUTODETECT: Final = 0x001
IRQS_SPURIOUS_DISABLED: Final = 0x002
IRQS_POLL_INPROGRESS: Final = 0x008
IRQS_ONESHOT: Final = 0x020
IRQS_REPLAY: Final = 0x040
IRQS_WAITING: Final = 0x080
IRQS_PENDING: Final = 0x200
IRQS_SUSPENDED: Final = 0x800

# Handler return values (include/linux/irqreturn.h)
IRQ_NONE: Final = 0
IRQ_HANDLED: Final = 1
IRQ_WAKE_THREAD: Final = 2

# request_irq flags (include/linux/interrupt.h)
IRQF_SHARED: Final = 0x80
IRQF_NO_BALANCING: Final = 0x800
IRQF_ONESHOT: Final = 0x2000

Handler = Callable[[int, Any], int]
"""``handler(irq, dev_id) -> IRQ_HANDLED | IRQ_NONE``."""
FlowHandler = Callable[["IrqDesc"], None]


class IrqCommonData:
    """State shared by every domain level of one interrupt."""

    __slots__ = ("affinity", "effective_affinity", "handler_data", "msi_desc", "state")

    def __init__(self) -> None:
        self.state = 0
        #: Requested affinity (Linux ``irq_common_data.affinity``).
        self.affinity: Cpumask = frozenset()
        #: CPUs the interrupt is actually routed to (set by the chip).
        self.effective_affinity: Cpumask = frozenset()
        self.msi_desc: Any = None
        self.handler_data: Any = None


class IrqData:
    """One domain level of an interrupt: hwirq, chip, chip_data, and the parent level."""

    __slots__ = ("chip", "chip_data", "common", "domain", "hwirq", "irq", "parent_data")

    def __init__(self, irq: int, common: IrqCommonData, domain: IrqDomain | None) -> None:
        self.irq = irq
        self.hwirq = 0
        self.common = common
        self.domain = domain
        self.chip: IrqChip | None = None
        self.chip_data: Any = None
        self.parent_data: IrqData | None = None

    # irqd_* accessors (the common state)
    def has(self, flag: int) -> bool:
        return bool(self.common.state & flag)

    def set(self, flag: int) -> None:
        self.common.state |= flag

    def clear(self, flag: int) -> None:
        self.common.state &= ~flag

    @property
    def trigger_type(self) -> int:
        return self.common.state & IRQD_TRIGGER_MASK

    def set_trigger_type(self, flow_type: int) -> None:
        st = self.common.state & ~(IRQD_TRIGGER_MASK | IRQD_LEVEL)
        st |= flow_type & IRQD_TRIGGER_MASK
        if flow_type & IRQ_TYPE_LEVEL_MASK:
            st |= IRQD_LEVEL
        self.common.state = st | IRQD_DEFAULT_TRIGGER_SET

    def update_effective_affinity(self, mask: Cpumask) -> None:
        """``irq_data_update_effective_affinity``: what the chip actually targets."""
        self.common.effective_affinity = frozenset(mask)

    def __repr__(self) -> str:
        chip = self.chip.name if self.chip else None
        dom = self.domain.name if self.domain else None
        return f"<IrqData irq={self.irq} hwirq={self.hwirq} chip={chip} domain={dom}>"


@dataclass
class IrqAction:
    """One requested handler of an interrupt."""

    handler: Handler
    name: str
    dev_id: Any
    flags: int = 0


class IrqDesc:
    """One Linux interrupt number and everything the core keeps about it."""

    __slots__ = ("actions", "core", "depth", "handle_irq", "hidden", "irq", "irq_count",
                 "irq_data", "irqs_unhandled", "istate", "kstat", "lock", "name", "wake_depth")

    def __init__(self, core: IrqCore, irq: int, ncpus: int) -> None:
        self.core = core
        self.irq = irq
        self.irq_data = IrqData(irq, IrqCommonData(), None)
        # A new descriptor is disabled and masked until it is started (desc_set_defaults).
        self.irq_data.common.state = IRQD_IRQ_DISABLED | IRQD_IRQ_MASKED
        self.handle_irq: FlowHandler = handle_bad_irq
        self.actions: list[IrqAction] = []
        #: Nested disable depth; 1 while not started (Linux starts descs disabled).
        self.depth = 1
        self.wake_depth = 0
        self.istate = 0
        #: Per-CPU counts of handled interrupts (/proc/interrupts).
        self.kstat = [0] * ncpus
        self.irq_count = 0
        self.irqs_unhandled = 0
        self.name = ""
        #: ``desc->lock``: every chip callback of this interrupt runs under it.
        self.lock = SpinLock(f"irq_desc[{irq}].lock", RANK_DESC)
        #: Not listed by /proc/interrupts (IRQ_HIDDEN: the IPIs, shown as IPI rows).
        self.hidden = False

    @property
    def common(self) -> IrqCommonData:
        return self.irq_data.common

    def levels(self) -> list[IrqData]:
        """The irq_data chain, outermost first."""
        out = []
        d: IrqData | None = self.irq_data
        while d is not None:
            out.append(d)
            d = d.parent_data
        return out

    def __repr__(self) -> str:
        return f"<IrqDesc {self.irq} {self.irq_data!r}>"


def handle_bad_irq(desc: IrqDesc) -> None:
    """Flow handler of a descriptor nobody set up (Linux ``handle_bad_irq``)."""
    desc.core.spurious_count += 1
    desc.core.log.warn(f"irq {desc.irq}: handle_bad_irq: no flow handler")
