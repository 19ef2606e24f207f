"""The irq core's global state: descriptors, the virq allocator, domains, the online mask.

Linux keeps these as globals (``irq_desc`` radix tree, ``irq_domain_list``,
``cpu_online_mask``); here one :class:`IrqCore` per booted kernel holds them, so
that a kexec'd kernel starts from scratch on the same hardware.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from directlpi.kernel.context import ExecContext
from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.desc import (
    IRQ_TYPE_NONE,
    IRQD_AFFINITY_MANAGED,
    Cpumask,
    IrqData,
    IrqDesc,
)
from directlpi.kernel.irq.domain import (
    DomainBusToken,
    Fwnode,
    IrqDomain,
    IrqDomainOps,
    IrqFwspec,
)
from directlpi.kernel.printk import Log


class IrqTracer(Protocol):
    """What Linux's ``irq_handler_entry`` and ``irq_handler_exit`` tracepoints record
    (``include/trace/events/irq.h``): one call each side of every action's handler."""

    def handler_entry(self, irq: int, name: str) -> None: ...
    def handler_exit(self, irq: int, ret: int) -> None: ...


NR_IRQS: Final = 1 << 16
"""Linux interrupt numbers available (virq 0 is never used)."""


@dataclass(frozen=True)
class IrqAffinityDesc:
    """``struct irq_affinity_desc``: a vector's CPUs and whether the core manages them."""

    mask: Cpumask
    is_managed: bool = False


class IrqCore:
    """Descriptors, domains and CPU masks of one running kernel."""

    def __init__(self, log: Log, ncpus: int, ctx: ExecContext) -> None:
        self.log = log
        #: Where kernel code runs now, and the locks it holds.
        self.ctx = ctx
        self.ncpus = ncpus
        self.descs: dict[int, IrqDesc] = {}
        self._used = bytearray(NR_IRQS)
        self._used[0] = 1
        self.domains: list[IrqDomain] = []
        self.possible: Cpumask = frozenset(range(ncpus))
        self.online: set[int] = set()
        self.default_affinity: Cpumask = self.possible
        #: Descriptors waiting for a software resend (Linux's resend tasklet).
        self.resend_queue: deque[IrqDesc] = deque()
        #: Non-zero while a caller of irq_set_irqchip_state(PENDING, False) asked for the
        #: pending state to be discarded (observers tell a discard from a lost interrupt).
        self.discarding = 0
        #: Interrupts nobody could handle (the "Err:" line of /proc/interrupts).
        self.spurious_count = 0
        #: Called with the descriptor before its handlers run (observers; empty: free).
        self.handler_hooks: list[Callable[[IrqDesc], None]] = []
        #: The irq_handler_entry / irq_handler_exit tracepoints (None: off, and free).
        self.tracer: IrqTracer | None = None

    @property
    def this_cpu(self) -> int:
        """The CPU the running kernel code is on."""
        return self.ctx.cpu

    @property
    def online_mask(self) -> Cpumask:
        return frozenset(self.online)

    # -- descriptors --------------------------------------------------------------------

    def irq_to_desc(self, irq: int) -> IrqDesc | None:
        return self.descs.get(irq)

    def active_descs(self) -> Iterator[IrqDesc]:
        for irq in sorted(self.descs):
            yield self.descs[irq]

    def alloc_descs(self, cnt: int,
                    affinity: Sequence[IrqAffinityDesc] | None = None) -> int:
        """``irq_alloc_descs``: ``cnt`` consecutive free virqs, lowest first."""
        if cnt < 1:
            raise KernelError(f"cannot allocate {cnt} interrupts", errno.EINVAL)
        if affinity is not None and len(affinity) != cnt:
            raise KernelError("one affinity descriptor per interrupt is needed", errno.EINVAL)
        used = self._used
        start = used.find(bytes(cnt), 1)
        if start < 0:
            raise KernelError(f"no {cnt} consecutive free interrupt numbers", errno.ENOSPC)
        for i in range(cnt):
            virq = start + i
            used[virq] = 1
            desc = IrqDesc(self, virq, self.ncpus)
            common = desc.irq_data.common
            if affinity is not None:
                common.affinity = frozenset(affinity[i].mask)
                if affinity[i].is_managed:
                    common.state |= IRQD_AFFINITY_MANAGED
            else:
                common.affinity = self.default_affinity
            self.descs[virq] = desc
        return start

    def free_descs(self, start: int, cnt: int) -> None:
        for virq in range(start, start + cnt):
            if self.descs.pop(virq, None) is not None:
                self._used[virq] = 0

    # -- domains ------------------------------------------------------------------------------

    def create_domain(self, name: str, fwnode: Fwnode, ops: IrqDomainOps, *,
                      parent: IrqDomain | None = None, host_data: Any = None,
                      bus_token: DomainBusToken = DomainBusToken.ANY, flags: int = 0,
                      size: int = 1 << 32) -> IrqDomain:
        """``irq_domain_create_tree`` / ``irq_domain_create_hierarchy``."""
        from directlpi.kernel.irq.domain import IRQ_DOMAIN_FLAG_HIERARCHY

        dom = IrqDomain(name, fwnode, ops, self, bus_token=bus_token, parent=parent,
                        host_data=host_data, flags=flags | IRQ_DOMAIN_FLAG_HIERARCHY,
                        hwirq_max=size)
        self.domains.append(dom)
        return dom

    def remove_domain(self, domain: IrqDomain) -> None:
        if domain.revmap:
            raise KernelError(f"domain {domain.name} still maps {len(domain.revmap)} interrupts",
                              errno.EBUSY)
        self.domains.remove(domain)

    def irq_find_matching_fwnode(self, fwnode: Fwnode | None,
                                 bus_token: DomainBusToken = DomainBusToken.ANY
                                 ) -> IrqDomain | None:
        """The first domain for ``fwnode`` serving ``bus_token`` (ANY matches every token)."""
        for dom in self.domains:
            if dom.ops.select is not None and fwnode is not None:
                if dom.ops.select(dom, IrqFwspec(fwnode, ()), bus_token):
                    return dom
            elif dom.fwnode is fwnode and (bus_token == DomainBusToken.ANY
                                           or dom.bus_token == bus_token):
                return dom
        return None

    # -- allocation through a hierarchy -------------------------------------------------------

    def _alloc_irq_data(self, domain: IrqDomain, virq: int, nr_irqs: int) -> None:
        for i in range(nr_irqs):
            desc = self.descs[virq + i]
            data = desc.irq_data
            data.domain = domain
            for parent in domain.hierarchy()[1:]:
                up = IrqData(virq + i, data.common, parent)
                data.parent_data = up
                data = up

    def _free_irq_data(self, virq: int, nr_irqs: int) -> None:
        for i in range(nr_irqs):
            desc = self.descs.get(virq + i)
            if desc is not None:
                desc.irq_data.parent_data = None
                desc.irq_data.domain = None

    def irq_domain_alloc_irqs(self, domain: IrqDomain, nr_irqs: int, arg: Any = None,
                              affinity: Sequence[IrqAffinityDesc] | None = None) -> int:
        """Allocate ``nr_irqs`` interrupts through every level of ``domain``'s hierarchy.

        On failure nothing stays allocated (descriptors, irq_data, reverse maps)
        and the domain's KernelError propagates.
        """
        if domain.ops.alloc is None:
            raise KernelError(f"domain {domain.name} cannot allocate", errno.ENOSYS)
        virq = self.alloc_descs(nr_irqs, affinity)
        try:
            self._alloc_irq_data(domain, virq, nr_irqs)
            domain.ops.alloc(domain, virq, nr_irqs, arg)
        except BaseException:
            self._free_irq_data(virq, nr_irqs)
            self.free_descs(virq, nr_irqs)
            raise
        for i in range(nr_irqs):
            for d in self.descs[virq + i].levels():
                if d.domain is not None:
                    d.domain.revmap[d.hwirq] = virq + i
        return virq

    def irq_domain_free_irqs(self, virq: int, nr_irqs: int) -> None:
        """Free interrupts allocated by :meth:`irq_domain_alloc_irqs` (deactivate them first)."""
        desc = self.descs.get(virq)
        if desc is None or desc.irq_data.domain is None:
            raise KernelError(f"irq {virq} was not allocated from a domain", errno.EINVAL)
        domain = desc.irq_data.domain
        for i in range(nr_irqs):
            for d in self.descs[virq + i].levels():
                if d.domain is not None and d.domain.revmap.get(d.hwirq) == virq + i:
                    del d.domain.revmap[d.hwirq]
        if domain.ops.free is not None:
            domain.ops.free(domain, virq, nr_irqs)
        self._free_irq_data(virq, nr_irqs)
        self.free_descs(virq, nr_irqs)

    def irq_find_mapping(self, domain: IrqDomain, hwirq: int) -> int:
        """The virq mapped to ``hwirq`` in ``domain``, or 0."""
        return domain.revmap.get(hwirq, 0)

    def irq_create_fwspec_mapping(self, fwspec: IrqFwspec) -> int:
        """Map a firmware interrupt specifier (e.g. a DT ``interrupts`` entry) to a virq."""
        from directlpi.kernel.irq.manage import irq_set_irq_type

        domain = (self.irq_find_matching_fwnode(fwspec.fwnode, DomainBusToken.WIRED)
                  or self.irq_find_matching_fwnode(fwspec.fwnode, DomainBusToken.ANY))
        if domain is None:
            raise KernelError(f"no irq domain for {fwspec.fwnode.name}", errno.ENODEV)
        if domain.ops.translate is None:
            raise KernelError(f"domain {domain.name} cannot translate specifiers", errno.EINVAL)
        hwirq, flow_type = domain.ops.translate(domain, fwspec)
        virq = self.irq_find_mapping(domain, hwirq)
        if virq:
            desc = self.descs[virq]
            if flow_type != IRQ_TYPE_NONE and flow_type != desc.irq_data.trigger_type:
                irq_set_irq_type(self, virq, flow_type)
            return virq
        virq = self.irq_domain_alloc_irqs(domain, 1, fwspec)
        if flow_type != IRQ_TYPE_NONE:
            irq_set_irq_type(self, virq, flow_type)
        return virq

    def irq_dispose_mapping(self, virq: int) -> None:
        from directlpi.kernel.irq.domain import irq_domain_deactivate_irq

        desc = self.descs.get(virq)
        if desc is None:
            return
        irq_domain_deactivate_irq(desc.irq_data)
        self.irq_domain_free_irqs(virq, 1)

    # -- entry from the root controller --------------------------------------------------------

    def generic_handle_domain_irq(self, domain: IrqDomain, hwirq: int) -> bool:
        """Run the flow handler of ``hwirq``'s interrupt; False if nothing is mapped."""
        virq = domain.revmap.get(hwirq)
        if virq is None:
            return False
        desc = self.descs[virq]
        desc.handle_irq(desc)
        return True
