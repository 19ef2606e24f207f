"""Flow handlers and the interrupt state machine (Linux ``kernel/irq/chip.c``,
``handle.c``, ``resend.c``, ``spurious.c``).

Disabling is *lazy*, as in Linux: :func:`irq_disable` only marks the interrupt
disabled; if it fires anyway, :func:`handle_fasteoi_irq` masks it at the chip,
marks it ``IRQS_PENDING`` and EOIs it.  :func:`irq_enable` unmasks, and
:func:`check_irq_resend` then has the chip hierarchy *really* make it pending
again (``irq_retrigger``), so nothing that arrived while disabled is lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from directlpi.kernel.irq.chip import (
    IRQCHIP_AFFINITY_PRE_STARTUP,
    IRQCHIP_EOI_IF_HANDLED,
    irq_chip_retrigger_hierarchy,
)
from directlpi.kernel.irq.desc import (
    IRQ_NONE,
    IRQD_AFFINITY_MANAGED,
    IRQD_AFFINITY_SET,
    IRQD_IRQ_DISABLED,
    IRQD_IRQ_INPROGRESS,
    IRQD_IRQ_MASKED,
    IRQD_IRQ_STARTED,
    IRQD_LEVEL,
    IRQD_MANAGED_SHUTDOWN,
    IRQD_RESEND_WHEN_IN_PROGRESS,
    IRQS_PENDING,
    IRQS_REPLAY,
    IRQS_SPURIOUS_DISABLED,
    IRQS_WAITING,
    IrqDesc,
)
from directlpi.kernel.irq.domain import irq_domain_activate_irq, irq_domain_deactivate_irq

if TYPE_CHECKING:
    from directlpi.kernel.irq.core import IrqTracer
    from directlpi.kernel.irq.desc import Cpumask, IrqData

# -- mask / unmask / enable / disable ------------------------------------------------------------


def mask_irq(desc: IrqDesc) -> None:
    d = desc.irq_data
    if d.common.state & IRQD_IRQ_MASKED:
        return
    if d.chip is not None and d.chip.irq_mask is not None:
        d.chip.irq_mask(d)
        d.common.state |= IRQD_IRQ_MASKED


def unmask_irq(desc: IrqDesc) -> None:
    d = desc.irq_data
    if not d.common.state & IRQD_IRQ_MASKED:
        return
    if d.chip is not None and d.chip.irq_unmask is not None:
        d.chip.irq_unmask(d)
        d.common.state &= ~IRQD_IRQ_MASKED


def irq_enable(desc: IrqDesc) -> None:
    d = desc.irq_data
    if not d.has(IRQD_IRQ_DISABLED):
        unmask_irq(desc)
        return
    d.clear(IRQD_IRQ_DISABLED)
    if d.chip is not None and d.chip.irq_enable is not None:
        d.chip.irq_enable(d)
        d.clear(IRQD_IRQ_MASKED)
    else:
        unmask_irq(desc)


def irq_disable(desc: IrqDesc, unlazy: bool = False) -> None:
    """Mark disabled; mask at the chip only if the chip has irq_disable or ``unlazy``."""
    d = desc.irq_data
    if d.has(IRQD_IRQ_DISABLED):
        if unlazy:
            mask_irq(desc)
        return
    d.set(IRQD_IRQ_DISABLED)
    if d.chip is not None and d.chip.irq_disable is not None:
        d.chip.irq_disable(d)
        d.set(IRQD_IRQ_MASKED)
    elif unlazy:
        mask_irq(desc)


# -- startup / shutdown ----------------------------------------------------------------------------

def _startup_low(desc: IrqDesc) -> None:
    d = desc.irq_data
    irq_domain_activate_irq(d, False)
    if d.chip is not None and d.chip.irq_startup is not None:
        d.chip.irq_startup(d)
        d.clear(IRQD_IRQ_DISABLED | IRQD_IRQ_MASKED)
    else:
        irq_enable(desc)
    d.set(IRQD_IRQ_STARTED)


def irq_startup(desc: IrqDesc, resend: bool = True, force: bool = False) -> None:
    """``irq_startup``: activate, route per affinity, enable; then resend what is pending."""
    from directlpi.kernel.irq.manage import irq_do_set_affinity, irq_setup_affinity

    d = desc.irq_data
    core = desc.core
    desc.depth = 0
    if d.has(IRQD_IRQ_STARTED):
        irq_enable(desc)
    elif d.has(IRQD_AFFINITY_MANAGED):
        d.clear(IRQD_MANAGED_SHUTDOWN)
        if not d.common.affinity & core.online:
            # No online CPU in a managed mask: stay shut down until one comes back.
            if force:
                core.log.warn(f"irq {desc.irq}: managed interrupt started with none of its "
                              f"CPUs online")
            d.set(IRQD_MANAGED_SHUTDOWN)
            desc.depth = 1
            return
        irq_domain_activate_irq(d, False)
        irq_do_set_affinity(d, d.common.affinity, False)
        _startup_low(desc)
    elif d.chip is not None and d.chip.flags & IRQCHIP_AFFINITY_PRE_STARTUP:
        # The chip wants its target before it is enabled (an LPI is unmasked on the
        # redistributor it will be delivered by).
        irq_domain_activate_irq(d, False)
        irq_setup_affinity(desc)
        _startup_low(desc)
    else:
        _startup_low(desc)
        irq_setup_affinity(desc)
    if resend:
        check_irq_resend(desc)


def irq_shutdown(desc: IrqDesc) -> None:
    d = desc.irq_data
    if not d.has(IRQD_IRQ_STARTED):
        return
    desc.depth = 1
    if desc in desc.core.resend_queue:
        desc.core.resend_queue.remove(desc)
    if d.chip is not None and d.chip.irq_shutdown is not None:
        d.chip.irq_shutdown(d)
        d.set(IRQD_IRQ_DISABLED | IRQD_IRQ_MASKED)
    else:
        irq_disable(desc, unlazy=True)
    d.clear(IRQD_IRQ_STARTED)


def irq_shutdown_and_deactivate(desc: IrqDesc) -> None:
    irq_shutdown(desc)
    irq_domain_deactivate_irq(desc.irq_data)


# -- resend ----------------------------------------------------------------------------------------

def check_irq_resend(desc: IrqDesc, inject: bool = False) -> None:
    """Re-raise an interrupt that was lost while disabled (``check_irq_resend``).

    Level-triggered interrupts are not resent: the line is still asserted if the
    device still wants service.  Otherwise the chip hierarchy retriggers it in
    hardware; only if no chip can, the descriptor is queued for a software
    resend, which the kernel's run loop performs.
    """
    d = desc.irq_data
    if d.has(IRQD_LEVEL):
        desc.istate &= ~IRQS_PENDING
        return
    if desc.istate & IRQS_REPLAY:
        return
    if not desc.istate & IRQS_PENDING and not inject:
        return
    desc.istate &= ~IRQS_PENDING
    if not _try_retrigger(d):
        desc.core.resend_queue.append(desc)
    desc.istate |= IRQS_REPLAY


def _try_retrigger(d: IrqData) -> int:
    """``try_retrigger``: the top chip's ``irq_retrigger``, else the hierarchy's."""
    if d.chip is not None and d.chip.irq_retrigger is not None:
        return int(d.chip.irq_retrigger(d))
    return irq_chip_retrigger_hierarchy(d)


# -- flow handlers ---------------------------------------------------------------------------------

def handle_irq_event(desc: IrqDesc) -> int:
    """Run every action with ``desc->lock`` dropped, the interrupt marked in progress;
    account unhandled interrupts (``note_interrupt``).  Called with the lock held."""
    desc.istate &= ~IRQS_PENDING
    hooks = desc.core.handler_hooks
    if hooks:
        for hook in hooks:
            hook(desc)
    common = desc.irq_data.common
    common.state |= IRQD_IRQ_INPROGRESS
    ctx = desc.core.ctx
    lock = desc.lock
    ctx.unlock(lock)
    result = IRQ_NONE
    irq = desc.irq
    tracer = desc.core.tracer
    try:
        if tracer is None:
            for action in desc.actions:
                result |= action.handler(irq, action.dev_id)
        else:
            result = _traced_actions(desc, tracer)
    finally:
        ctx.lock(lock)
        common.state &= ~IRQD_IRQ_INPROGRESS
    if result == IRQ_NONE:
        note_unhandled(desc)
    return result


def _traced_actions(desc: IrqDesc, tracer: IrqTracer) -> int:
    """The actions of ``desc`` between the irq_handler_entry/exit tracepoints."""
    result = IRQ_NONE
    irq = desc.irq
    for action in desc.actions:
        tracer.handler_entry(irq, action.name)
        ret = action.handler(irq, action.dev_id)
        tracer.handler_exit(irq, ret)
        result |= ret
    return result


def note_unhandled(desc: IrqDesc) -> None:
    """Linux's "nobody cared" detector: 99,900 unhandled of 100,000 disables the line."""
    desc.irqs_unhandled += 1
    desc.irq_count += 1
    if desc.irq_count < 100_000:
        return
    if desc.irqs_unhandled > 99_900:
        desc.core.log.err(f"irq {desc.irq}: nobody cared (try booting with the \"irqpoll\" "
                          "option); disabling IRQ")
        desc.istate |= IRQS_SPURIOUS_DISABLED
        desc.depth += 1
        irq_disable(desc, unlazy=True)
    desc.irq_count = 0
    desc.irqs_unhandled = 0


def handle_fasteoi_irq(desc: IrqDesc) -> None:
    """Flow of a controller that needs one EOI per interrupt (the GIC), under ``desc->lock``.

    If the handler is still running on another CPU (an affinity change raced with its
    handling), the interrupt is not run twice at once: it is dropped -- or, for an
    interrupt marked IRQD_RESEND_WHEN_IN_PROGRESS (LPIs), marked pending and resent
    once that handler is done.
    """
    d = desc.irq_data
    chip = d.chip
    assert chip is not None
    ctx = desc.core.ctx
    lock = desc.lock
    ctx.lock(lock)                              # raw_spin_lock(&desc->lock)
    try:
        state = d.common.state
        if state & IRQD_IRQ_INPROGRESS:                       # !irq_can_handle_pm()
            if state & IRQD_RESEND_WHEN_IN_PROGRESS:
                desc.istate |= IRQS_PENDING
            if not chip.flags & IRQCHIP_EOI_IF_HANDLED:
                assert chip.irq_eoi is not None
                chip.irq_eoi(d)
            return
        desc.istate &= ~(IRQS_REPLAY | IRQS_WAITING)
        if not desc.actions or state & IRQD_IRQ_DISABLED:
            desc.istate |= IRQS_PENDING
            mask_irq(desc)
            if not chip.flags & IRQCHIP_EOI_IF_HANDLED:
                assert chip.irq_eoi is not None
                chip.irq_eoi(d)
            return
        desc.kstat[desc.core.ctx.cpu] += 1
        handle_irq_event(desc)
        assert chip.irq_eoi is not None
        chip.irq_eoi(d)
        if desc.istate & IRQS_PENDING:          # it fired elsewhere meanwhile: resend
            check_irq_resend(desc)
    finally:
        if lock.owner is not None:
            ctx.unlock(lock)


def handle_percpu_devid_irq(desc: IrqDesc) -> None:
    """Flow of a per-CPU interrupt (SGIs, PPIs): no global state and no ``desc->lock``
    -- each CPU has its own instance -- just count, run the action, EOI."""
    d = desc.irq_data
    chip = d.chip
    assert chip is not None
    desc.kstat[desc.core.ctx.cpu] += 1
    hooks = desc.core.handler_hooks
    if hooks:
        for hook in hooks:
            hook(desc)
    tracer = desc.core.tracer
    if tracer is None:
        result = IRQ_NONE
        for action in desc.actions:
            result |= action.handler(desc.irq, action.dev_id)
    else:
        result = _traced_actions(desc, tracer)
    if result == IRQ_NONE:
        note_unhandled(desc)
    if chip.irq_eoi is not None:
        chip.irq_eoi(d)


def affinity_mask_or_online(desc: IrqDesc) -> Cpumask:
    """The set of CPUs an unmanaged interrupt may be routed to right now."""
    d = desc.irq_data
    core = desc.core
    if d.has(IRQD_AFFINITY_MANAGED) or d.has(IRQD_AFFINITY_SET):
        if d.common.affinity & core.online:
            return d.common.affinity
        d.clear(IRQD_AFFINITY_SET)
    return core.default_affinity
