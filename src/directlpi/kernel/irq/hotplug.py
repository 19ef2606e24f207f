"""CPU hotplug for interrupts (Linux ``kernel/irq/cpuhotplug.c``).

Going offline (:func:`irq_migrate_all_off_this_cpu`): every started interrupt
whose *effective* affinity contains the outgoing CPU is re-routed through its
chip's ``irq_set_affinity`` -- within its affinity mask if any CPU of it is
still online, otherwise (unmanaged) to any online CPU ("affinity broken").  A
managed interrupt with no online CPU left is shut down instead, and started
again by :func:`irq_affinity_online_cpu` when one of its CPUs returns.

When the chip has no room within the mask (ENOSPC: for Direct LPI, a device
whose address width cannot reach the online CPUs' redistributors) an unmanaged
interrupt is tried once more on any online CPU.  What still lives on the old
target is the provider's business, in its ``cpu_dying`` hook on the dying CPU
(Direct LPI carries what the old redistributor holds; docs/direct-lpi.md).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.desc import (
    IRQD_AFFINITY_MANAGED,
    IRQD_IRQ_STARTED,
    IRQD_MANAGED_SHUTDOWN,
    IRQD_PER_CPU,
    IRQD_SINGLE_TARGET,
    Cpumask,
    IrqDesc,
)
from directlpi.kernel.irq.flow import irq_shutdown_and_deactivate, irq_startup
from directlpi.kernel.irq.manage import irq_do_set_affinity, irq_set_affinity_locked

if TYPE_CHECKING:
    from directlpi.kernel.irq.core import IrqCore


def migrate_one_irq(desc: IrqDesc, cpu: int) -> bool:
    """Move ``desc`` off ``cpu`` (already removed from the online mask).

    Returns True when the affinity had to be broken.
    """
    d = desc.irq_data
    chip = d.chip
    if chip is None or chip.irq_set_affinity is None:
        return False
    if d.has(IRQD_PER_CPU) or not d.has(IRQD_IRQ_STARTED):
        return False
    if cpu not in d.common.effective_affinity:
        return False
    core = desc.core
    if not d.common.affinity & core.online and d.has(IRQD_AFFINITY_MANAGED):
        d.set(IRQD_MANAGED_SHUTDOWN)
        irq_shutdown_and_deactivate(desc)
        core.log.info(f"IRQ {desc.irq}: managed, all its CPUs offline: shut down")
        return False
    return migrate_to(desc, d.common.affinity)


def migrate_to(desc: IrqDesc, affinity: Cpumask) -> bool:
    """Route ``desc`` (lock held) within the online part of ``affinity``, or any online
    CPU when none of it is online, or when the chip has no room there (ENOSPC) and the
    interrupt is not managed.  Returns True when the affinity had to be broken; a chip
    that refuses is warned about, as Linux does, and the interrupt left where it is."""
    d = desc.irq_data
    core = desc.core
    broke = not affinity & core.online
    if broke:
        affinity = core.online_mask
    try:
        try:
            irq_do_set_affinity(d, affinity, False)
        except KernelError as exc:
            if (exc.errno != errno.ENOSPC or d.has(IRQD_AFFINITY_MANAGED)
                    or affinity == core.online_mask):
                raise
            irq_do_set_affinity(d, core.online_mask, False)
            broke = True
    except KernelError as exc:
        core.log.warn(f"IRQ{desc.irq}: set affinity failed({-exc.errno}).")
        return False
    return broke


def irq_migrate_all_off_this_cpu(core: IrqCore, cpu: int) -> None:
    """On the dying CPU, interrupts off: move each interrupt away, under its own lock."""
    ctx = core.ctx
    for desc in list(core.active_descs()):
        with ctx.locked(desc.lock):
            broke = migrate_one_irq(desc, cpu)
        if broke:
            core.log.warn(f"IRQ {desc.irq}: no longer affine to CPU{cpu}")


def irq_affinity_online_cpu(core: IrqCore, cpu: int) -> None:
    """Restart managed interrupts shut down for lack of CPUs; re-spread the others
    (``irq_restore_affinity_of_irq``, each under its own lock).  A restart or move that
    fails (the irqchip cannot target the CPU: its redistributor took no LPIs) leaves that
    interrupt as it was and does not fail the CPU's bring-up -- Linux ignores the error;
    here it is logged."""
    ctx = core.ctx
    for desc in list(core.active_descs()):
        d = desc.irq_data
        if (not d.has(IRQD_AFFINITY_MANAGED) or not desc.actions or d.chip is None
                or cpu not in d.common.affinity):
            continue
        with ctx.locked(desc.lock):
            try:
                if d.has(IRQD_MANAGED_SHUTDOWN):
                    irq_startup(desc, resend=True)
                elif not d.has(IRQD_SINGLE_TARGET):
                    irq_set_affinity_locked(d, d.common.affinity, False)
            except KernelError as exc:
                core.log.warn(f"IRQ {desc.irq}: not restored on CPU{cpu}: {exc} "
                              f"[{exc.errno_name}]")
