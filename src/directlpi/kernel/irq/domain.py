"""Hierarchical irq domains (Linux ``kernel/irq/irqdomain.c``).

A domain translates hardware interrupt numbers of one controller into Linux
interrupts.  In a hierarchy each domain has a parent (PCI-MSI -> nexus -> GIC);
allocating an interrupt in the outermost domain allocates one level per domain,
top-down, each ``ops.alloc`` calling :func:`irq_domain_alloc_irqs_parent`.

Conventions kept from Linux: a domain's ``alloc`` that fails after allocating
its parents frees them itself (one unwind path, reverse order); activation runs
parent first, deactivation child first.
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.desc import IRQD_ACTIVATED, FlowHandler, IrqData

if TYPE_CHECKING:
    from directlpi.kernel.irq.chip import IrqChip
    from directlpi.kernel.irq.core import IrqCore


class DomainBusToken(IntEnum):
    """``enum irq_domain_bus_token``: what kind of interrupts a domain serves."""

    ANY = 0
    WIRED = 1
    GENERIC_MSI = 2
    PCI_MSI = 3
    PLATFORM_MSI = 4
    NEXUS = 5


# Domain flags (include/linux/irqdomain.h)
IRQ_DOMAIN_FLAG_HIERARCHY = 1 << 0
IRQ_DOMAIN_FLAG_MSI = 1 << 4
IRQ_DOMAIN_FLAG_ISOLATED_MSI = 1 << 5
"""The domain isolates MSIs (e.g. an ITS with per-device tables): device
assignment is safe.  Direct LPI never sets it."""
IRQ_DOMAIN_FLAG_MSI_PARENT = 1 << 8

_fwnode_ids = itertools.count(1)


class Fwnode:
    """A firmware node handle (``struct fwnode_handle``): identity plus a name."""

    __slots__ = ("id", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.id = next(_fwnode_ids)

    def __repr__(self) -> str:
        return f"<Fwnode {self.name}>"


@dataclass(frozen=True)
class IrqFwspec:
    """``struct irq_fwspec``: a controller and the cells that name one of its interrupts."""

    fwnode: Fwnode
    params: tuple[int, ...]


@dataclass
class IrqDomainOps:
    """``struct irq_domain_ops`` (hierarchy flavour)."""

    alloc: Callable[[IrqDomain, int, int, Any], None] | None = None
    free: Callable[[IrqDomain, int, int], None] | None = None
    activate: Callable[[IrqDomain, IrqData, bool], None] | None = None
    deactivate: Callable[[IrqDomain, IrqData], None] | None = None
    translate: Callable[[IrqDomain, IrqFwspec], tuple[int, int]] | None = None
    select: Callable[[IrqDomain, IrqFwspec | None, DomainBusToken], bool] | None = None


@dataclass(eq=False)
class IrqDomain:
    """``struct irq_domain``."""

    name: str
    fwnode: Fwnode
    ops: IrqDomainOps
    core: IrqCore
    bus_token: DomainBusToken = DomainBusToken.ANY
    parent: IrqDomain | None = None
    host_data: Any = None
    flags: int = IRQ_DOMAIN_FLAG_HIERARCHY
    hwirq_max: int = 1 << 32
    #: hwirq -> virq (the reverse map)
    revmap: dict[int, int] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"<IrqDomain {self.name} {self.bus_token.name}>"

    def update_bus_token(self, token: DomainBusToken) -> None:
        self.bus_token = token

    def hierarchy(self) -> list[IrqDomain]:
        """This domain and its parents, outermost first."""
        out = []
        d: IrqDomain | None = self
        while d is not None:
            out.append(d)
            d = d.parent
        return out


# -- per-level helpers used by domain ops ----------------------------------------------------

def irq_domain_get_irq_data(domain: IrqDomain, virq: int) -> IrqData:
    """The irq_data of ``virq`` at ``domain``'s level."""
    desc = domain.core.irq_to_desc(virq)
    if desc is None:
        raise KernelError(f"irq {virq} does not exist", errno.EINVAL)
    d: IrqData | None = desc.irq_data
    while d is not None:
        if d.domain is domain:
            return d
        d = d.parent_data
    raise KernelError(f"irq {virq} has no level in domain {domain.name}", errno.EINVAL)


def irq_domain_set_hwirq_and_chip(domain: IrqDomain, virq: int, hwirq: int, chip: IrqChip,
                                  chip_data: Any) -> IrqData:
    d = irq_domain_get_irq_data(domain, virq)
    d.hwirq = hwirq
    d.chip = chip
    d.chip_data = chip_data
    return d


def irq_domain_set_info(domain: IrqDomain, virq: int, hwirq: int, chip: IrqChip,
                        chip_data: Any, handler: FlowHandler | None,
                        handler_name: str = "") -> IrqData:
    d = irq_domain_set_hwirq_and_chip(domain, virq, hwirq, chip, chip_data)
    if handler is not None:
        desc = domain.core.irq_to_desc(virq)
        assert desc is not None
        desc.handle_irq = handler
        if handler_name:
            desc.name = handler_name
    return d


def irq_domain_reset_irq_data(d: IrqData) -> None:
    d.hwirq = 0
    d.chip = None
    d.chip_data = None


def irq_domain_alloc_irqs_parent(domain: IrqDomain, virq: int, nr_irqs: int, arg: Any) -> None:
    parent = domain.parent
    if parent is None or parent.ops.alloc is None:
        raise KernelError(f"domain {domain.name} has no parent to allocate from", errno.ENOSYS)
    parent.ops.alloc(parent, virq, nr_irqs, arg)


def irq_domain_free_irqs_parent(domain: IrqDomain, virq: int, nr_irqs: int) -> None:
    parent = domain.parent
    if parent is not None and parent.ops.free is not None:
        parent.ops.free(parent, virq, nr_irqs)


def irq_domain_free_irqs_common(domain: IrqDomain, virq: int, nr_irqs: int) -> None:
    """Reset this level's data and free the parent's: the usual ``ops.free``."""
    for i in range(nr_irqs):
        irq_domain_reset_irq_data(irq_domain_get_irq_data(domain, virq + i))
    irq_domain_free_irqs_parent(domain, virq, nr_irqs)


# -- activation -------------------------------------------------------------------------------

def irq_domain_activate_irq(d: IrqData, reserve: bool = False) -> None:
    """Activate every level, parent first (``irq_domain_activate_irq``)."""
    if d.has(IRQD_ACTIVATED):
        return
    _activate(d, reserve)
    d.set(IRQD_ACTIVATED)


def _activate(d: IrqData, reserve: bool) -> None:
    if d.parent_data is not None:
        _activate(d.parent_data, reserve)
    dom = d.domain
    if dom is not None and dom.ops.activate is not None:
        try:
            dom.ops.activate(dom, d, reserve)
        except KernelError:
            if d.parent_data is not None:
                _deactivate(d.parent_data)
            raise


def irq_domain_deactivate_irq(d: IrqData) -> None:
    """Deactivate every level, child first."""
    if not d.has(IRQD_ACTIVATED):
        return
    _deactivate(d)
    d.clear(IRQD_ACTIVATED)


def _deactivate(d: IrqData) -> None:
    dom = d.domain
    if dom is not None and dom.ops.deactivate is not None:
        dom.ops.deactivate(dom, d)
    if d.parent_data is not None:
        _deactivate(d.parent_data)
