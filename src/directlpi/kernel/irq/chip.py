"""``struct irq_chip`` and the hierarchy helpers that delegate to the parent level.

A chip is a table of callbacks, as in Linux: ``IrqChip(name="GICv3",
irq_mask=..., irq_eoi=irq_chip_eoi_parent, ...)``.  A callback that is ``None``
is not implemented.  Callbacks raise :class:`KernelError` on failure; success
codes (``IRQ_SET_MASK_OK*``) are returned as in Linux.

The ``irq_chip_*_parent`` helpers are a few lines each: step to the parent
level, call it, or fall back -- the shape of ``kernel/irq/chip.c``.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from directlpi.kernel.errors import KernelError

if TYPE_CHECKING:
    from directlpi.kernel.irq.desc import Cpumask, IrqData

# irq_set_affinity return codes (include/linux/irq.h)
IRQ_SET_MASK_OK: Final = 0
IRQ_SET_MASK_OK_NOCOPY: Final = 1
IRQ_SET_MASK_OK_DONE: Final = 2

# irq_chip flags
IRQCHIP_SET_TYPE_MASKED: Final = 1 << 0
IRQCHIP_EOI_IF_HANDLED: Final = 1 << 1
IRQCHIP_MASK_ON_SUSPEND: Final = 1 << 2
IRQCHIP_ONOFFLINE_ENABLED: Final = 1 << 3
IRQCHIP_SKIP_SET_WAKE: Final = 1 << 4
IRQCHIP_ONESHOT_SAFE: Final = 1 << 5
IRQCHIP_EOI_THREADED: Final = 1 << 6
IRQCHIP_SUPPORTS_LEVEL_MSI: Final = 1 << 7
IRQCHIP_SUPPORTS_NMI: Final = 1 << 8
IRQCHIP_ENABLE_WAKEUP_ON_SUSPEND: Final = 1 << 9
IRQCHIP_AFFINITY_PRE_STARTUP: Final = 1 << 10
IRQCHIP_IMMUTABLE: Final = 1 << 11

# enum irqchip_irq_state (include/linux/interrupt.h)
IRQCHIP_STATE_PENDING: Final = 0
IRQCHIP_STATE_ACTIVE: Final = 1
IRQCHIP_STATE_MASKED: Final = 2
IRQCHIP_STATE_LINE_LEVEL: Final = 3

IRQCHIP_STATE_NAMES: Final = {IRQCHIP_STATE_PENDING: "PENDING", IRQCHIP_STATE_ACTIVE: "ACTIVE",
                       IRQCHIP_STATE_MASKED: "MASKED", IRQCHIP_STATE_LINE_LEVEL: "LINE_LEVEL"}

DataCb = Callable[["IrqData"], None]


@dataclass(eq=False)
class IrqChip:
    """Hardware interrupt chip descriptor (Linux ``struct irq_chip``)."""

    name: str
    irq_startup: Callable[[IrqData], int] | None = None
    irq_shutdown: DataCb | None = None
    irq_enable: DataCb | None = None
    irq_disable: DataCb | None = None
    irq_ack: DataCb | None = None
    irq_mask: DataCb | None = None
    irq_unmask: DataCb | None = None
    irq_eoi: DataCb | None = None
    irq_set_affinity: Callable[[IrqData, Cpumask, bool], int] | None = None
    irq_retrigger: Callable[[IrqData], int] | None = None
    irq_set_type: Callable[[IrqData, int], int] | None = None
    irq_compose_msi_msg: Callable[[IrqData, Any], None] | None = None
    irq_write_msi_msg: Callable[[IrqData, Any], None] | None = None
    irq_get_irqchip_state: Callable[[IrqData, int], bool] | None = None
    irq_set_irqchip_state: Callable[[IrqData, int, bool], None] | None = None
    irq_set_vcpu_affinity: Callable[[IrqData, Any], None] | None = None
    flags: int = 0

    def __repr__(self) -> str:
        return f"<IrqChip {self.name}>"


def _parent(d: IrqData) -> IrqData:
    p = d.parent_data
    if p is None or p.chip is None:
        raise KernelError(f"irq {d.irq}: no parent irq chip below {d.domain!r}", errno.ENOSYS)
    return p


def irq_chip_mask_parent(d: IrqData) -> None:
    p = _parent(d)
    if p.chip and p.chip.irq_mask:
        p.chip.irq_mask(p)


def irq_chip_unmask_parent(d: IrqData) -> None:
    p = _parent(d)
    if p.chip and p.chip.irq_unmask:
        p.chip.irq_unmask(p)


def irq_chip_eoi_parent(d: IrqData) -> None:
    p = d.parent_data
    assert p is not None and p.chip is not None and p.chip.irq_eoi is not None
    p.chip.irq_eoi(p)


def irq_chip_ack_parent(d: IrqData) -> None:
    p = _parent(d)
    if p.chip and p.chip.irq_ack:
        p.chip.irq_ack(p)


def irq_chip_enable_parent(d: IrqData) -> None:
    p = _parent(d)
    assert p.chip is not None
    if p.chip.irq_enable:
        p.chip.irq_enable(p)
    elif p.chip.irq_unmask:
        p.chip.irq_unmask(p)


def irq_chip_disable_parent(d: IrqData) -> None:
    p = _parent(d)
    assert p.chip is not None
    if p.chip.irq_disable:
        p.chip.irq_disable(p)
    elif p.chip.irq_mask:
        p.chip.irq_mask(p)


def irq_chip_set_affinity_parent(d: IrqData, mask: Cpumask, force: bool) -> int:
    p = _parent(d)
    assert p.chip is not None
    if p.chip.irq_set_affinity is None:
        raise KernelError(f"irq {d.irq}: parent chip {p.chip.name} cannot set affinity",
                          errno.ENOSYS)
    return p.chip.irq_set_affinity(p, mask, force)


def irq_chip_set_type_parent(d: IrqData, flow_type: int) -> int:
    p = _parent(d)
    assert p.chip is not None
    if p.chip.irq_set_type is None:
        raise KernelError(f"irq {d.irq}: parent chip cannot set the trigger type", errno.ENOSYS)
    return p.chip.irq_set_type(p, flow_type)


def irq_chip_retrigger_hierarchy(d: IrqData) -> int:
    """Retrigger through the first *parent* level whose chip can (a chip may use this
    as its own ``irq_retrigger``)."""
    data: IrqData | None = d.parent_data
    while data is not None:
        if data.chip is not None and data.chip.irq_retrigger is not None:
            return data.chip.irq_retrigger(data)
        data = data.parent_data
    return 0


def irq_chip_get_parent_state(d: IrqData, which: int) -> bool:
    p = _parent(d)
    assert p.chip is not None
    if p.chip.irq_get_irqchip_state is None:
        raise KernelError(f"irq {d.irq}: no chip below reports state", errno.EINVAL)
    return p.chip.irq_get_irqchip_state(p, which)


def irq_chip_set_parent_state(d: IrqData, which: int, value: bool) -> None:
    p = _parent(d)
    assert p.chip is not None
    if p.chip.irq_set_irqchip_state is None:
        raise KernelError(f"irq {d.irq}: no chip below sets state", errno.EINVAL)
    p.chip.irq_set_irqchip_state(p, which, value)
