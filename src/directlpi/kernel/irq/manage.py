"""Driver-facing interrupt management (Linux ``kernel/irq/manage.c``).

``request_irq``, ``free_irq``, ``disable_irq``, ``enable_irq``,
``irq_set_affinity`` and the irqchip-state accessors.  Failures raise
:class:`~directlpi.kernel.errors.KernelError` with the errno Linux returns.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.chip import (
    IRQ_SET_MASK_OK,
    IRQ_SET_MASK_OK_DONE,
    IRQ_SET_MASK_OK_NOCOPY,
    IRQCHIP_SET_TYPE_MASKED,
    IRQCHIP_STATE_NAMES,
    IRQCHIP_STATE_PENDING,
)
from directlpi.kernel.irq.desc import (
    IRQ_TYPE_SENSE_MASK,
    IRQD_ACTIVATED,
    IRQD_AFFINITY_MANAGED,
    IRQD_AFFINITY_ON_ACTIVATE,
    IRQD_AFFINITY_SET,
    IRQD_IRQ_DISABLED,
    IRQD_IRQ_MASKED,
    IRQD_MANAGED_SHUTDOWN,
    IRQD_PER_CPU,
    IRQF_SHARED,
    Cpumask,
    Handler,
    IrqAction,
    IrqData,
    IrqDesc,
)
from directlpi.kernel.irq.domain import irq_domain_activate_irq, irq_domain_deactivate_irq
from directlpi.kernel.irq.flow import (
    affinity_mask_or_online,
    irq_disable,
    irq_shutdown,
    irq_startup,
    mask_irq,
    unmask_irq,
)

if TYPE_CHECKING:
    from directlpi.kernel.irq.core import IrqCore


def _desc(core: IrqCore, irq: int) -> IrqDesc:
    desc = core.irq_to_desc(irq) if isinstance(irq, int) else None
    if desc is None:
        raise KernelError(f"irq {irq!r} does not exist", errno.EINVAL)
    return desc


# -- request / free -------------------------------------------------------------------------------

def request_irq(core: IrqCore, irq: int, handler: Handler, flags: int = 0, name: str = "",
                dev_id: Any = None) -> None:
    """Install ``handler(irq, dev_id)`` and, for the first action, start the interrupt
    (``__setup_irq``: activation and startup under ``desc->lock``)."""
    desc = _desc(core, irq)
    if not callable(handler):
        raise KernelError(f"irq {irq}: the handler is not callable", errno.EINVAL)
    if flags & IRQF_SHARED and dev_id is None:
        raise KernelError(f"irq {irq}: a shared interrupt needs a dev_id", errno.EINVAL)
    d = desc.irq_data
    if d.chip is None:
        raise KernelError(f"irq {irq} has no irq chip (not mapped)", errno.ENOSYS)
    with core.ctx.locked(desc.lock):
        if desc.actions:
            if not (flags & IRQF_SHARED and all(a.flags & IRQF_SHARED for a in desc.actions)):
                raise KernelError(f"irq {irq} is already requested by '{desc.actions[0].name}' "
                                  "and is not shared by both (IRQF_SHARED)", errno.EBUSY)
            desc.actions.append(IrqAction(handler, name, dev_id, flags))
            return
        # First action: activate (which may fail) before anything becomes visible; a
        # managed interrupt is activated by its startup, once one of its CPUs is online.
        if not d.has(IRQD_AFFINITY_MANAGED):
            irq_domain_activate_irq(d, False)
        desc.actions.append(IrqAction(handler, name, dev_id, flags))
        desc.name = desc.name or name
        try:
            irq_startup(desc, resend=True)
        except KernelError:
            desc.actions.pop()
            raise


def free_irq(core: IrqCore, irq: int, dev_id: Any = None) -> None:
    """Remove the action of ``dev_id``; the last one shuts the interrupt down, then
    deactivates it (``__free_irq``: both under ``desc->lock``, taken twice)."""
    desc = _desc(core, irq)
    with core.ctx.locked(desc.lock):
        for i, action in enumerate(desc.actions):
            if action.dev_id is dev_id or action.dev_id == dev_id:
                del desc.actions[i]
                break
        else:
            raise KernelError(f"trying to free already-free IRQ {irq}", errno.EINVAL)
        if desc.actions:
            return
        irq_shutdown(desc)
    with core.ctx.locked(desc.lock):
        irq_domain_deactivate_irq(desc.irq_data)
        desc.irq_data.clear(IRQD_MANAGED_SHUTDOWN)


# -- disable / enable ------------------------------------------------------------------------------

def disable_irq_nosync(core: IrqCore, irq: int) -> None:
    """Nested disable; lazy (the chip is masked only if the interrupt fires)."""
    desc = _desc(core, irq)
    with core.ctx.locked(desc.lock):
        if desc.depth == 0:
            irq_disable(desc)
        desc.depth += 1


def disable_irq(core: IrqCore, irq: int) -> None:
    """:func:`disable_irq_nosync`, then wait for running handlers (``synchronize_irq``,
    which may sleep: not from atomic context)."""
    core.ctx.might_sleep("disable_irq")
    disable_irq_nosync(core, irq)


def enable_irq(core: IrqCore, irq: int) -> None:
    """Undo one :func:`disable_irq`; the last one re-enables and resends what was lost."""
    desc = _desc(core, irq)
    with core.ctx.locked(desc.lock):
        if desc.depth == 0:
            core.log.warn(f"Unbalanced enable for IRQ {irq}")
            return
        if desc.depth == 1:
            if not desc.actions:
                desc.depth = 0
                return
            irq_startup(desc, resend=True, force=True)
        else:
            desc.depth -= 1


def irq_inject_interrupt(core: IrqCore, irq: int) -> None:
    """Raise ``irq`` again through the chip hierarchy (Linux's debugfs "trigger").

    Only for an activated edge interrupt: EINVAL otherwise.
    """
    from directlpi.kernel.irq.desc import IRQD_LEVEL
    from directlpi.kernel.irq.flow import check_irq_resend

    desc = _desc(core, irq)
    d = desc.irq_data
    with core.ctx.locked(desc.lock):
        if not d.has(IRQD_ACTIVATED):
            raise KernelError(f"irq {irq} is not activated", errno.EINVAL)
        if d.has(IRQD_LEVEL):
            raise KernelError(f"irq {irq} is level-triggered: it cannot be injected",
                              errno.EINVAL)
        check_irq_resend(desc, inject=True)


def _percpu_data(core: IrqCore, irq: int, op: str) -> IrqData:
    """The irq_data of per-CPU interrupt ``irq`` whose chip implements ``op``."""
    d = _desc(core, irq).irq_data
    if not d.has(IRQD_PER_CPU) or d.chip is None or getattr(d.chip, op) is None:
        raise KernelError(f"irq {irq} is not a per-CPU interrupt", errno.EINVAL)
    return d


def enable_percpu_irq(core: IrqCore, irq: int) -> None:
    """Unmask a per-CPU interrupt (a PPI) on the CPU the caller runs on."""
    d = _percpu_data(core, irq, "irq_unmask")
    assert d.chip is not None and d.chip.irq_unmask is not None
    with core.ctx.locked(_desc(core, irq).lock):
        d.chip.irq_unmask(d)


def disable_percpu_irq(core: IrqCore, irq: int) -> None:
    """Mask a per-CPU interrupt on the CPU the caller runs on."""
    d = _percpu_data(core, irq, "irq_mask")
    assert d.chip is not None and d.chip.irq_mask is not None
    with core.ctx.locked(_desc(core, irq).lock):
        d.chip.irq_mask(d)


# -- affinity --------------------------------------------------------------------------------------

def irq_do_set_affinity(d: IrqData, mask: Cpumask, force: bool) -> int:
    """Ask the chip to route to (the online part of) ``mask``; record it on success."""
    desc_core = _core_of(d)
    chip = d.chip
    if chip is None or chip.irq_set_affinity is None:
        raise KernelError(f"irq {d.irq}: its chip cannot set affinity", errno.EINVAL)
    target = frozenset(mask) if force else frozenset(mask) & desc_core.online
    if not target:
        raise KernelError(f"irq {d.irq}: no online CPU in {sorted(mask)}", errno.EINVAL)
    ret = chip.irq_set_affinity(d, target, force)
    if ret in (IRQ_SET_MASK_OK, IRQ_SET_MASK_OK_DONE):
        d.common.affinity = frozenset(mask)
    elif ret != IRQ_SET_MASK_OK_NOCOPY:
        raise KernelError(f"irq {d.irq}: set_affinity returned {ret}", errno.EINVAL)
    return ret


def _core_of(d: IrqData) -> IrqCore:
    dom = d.domain
    assert dom is not None, "affinity of an interrupt without a domain"
    return dom.core


def irq_setup_affinity(desc: IrqDesc) -> None:
    """Route a newly started, unmanaged interrupt (``irq_setup_affinity``)."""
    d = desc.irq_data
    chip = d.chip
    if chip is None or chip.irq_set_affinity is None or d.has(IRQD_PER_CPU):
        return
    core = desc.core
    mask = affinity_mask_or_online(desc) & core.online or core.online_mask
    irq_do_set_affinity(d, mask, False)


def irq_set_affinity_deactivated(d: IrqData, mask: Cpumask) -> bool:
    """A chip that routes only once activated (IRQD_AFFINITY_ON_ACTIVATE) is not called
    for an interrupt that is not activated: the mask is only stored, and activation
    routes it (Linux ``irq_set_affinity_deactivated``)."""
    if d.has(IRQD_ACTIVATED) or not d.has(IRQD_AFFINITY_ON_ACTIVATE):
        return False
    d.common.affinity = mask
    d.update_effective_affinity(mask)
    d.set(IRQD_AFFINITY_SET)
    return True


def irq_set_affinity_locked(d: IrqData, mask: Cpumask, force: bool) -> int:
    """``irq_set_affinity_locked``, with ``desc->lock`` held: route through the chip now,
    unless the interrupt is not activated and its chip routes on activation."""
    chip = d.chip
    if chip is None or chip.irq_set_affinity is None:
        raise KernelError(f"irq {d.irq}: its chip cannot set affinity", errno.EINVAL)
    if irq_set_affinity_deactivated(d, mask):
        return IRQ_SET_MASK_OK
    ret = irq_do_set_affinity(d, mask, force)
    d.set(IRQD_AFFINITY_SET)
    return ret


def irq_set_affinity(core: IrqCore, irq: int, cpus: Iterable[int], force: bool = False) -> int:
    """Route ``irq`` to ``cpus`` (the chip picks the target among the online ones).

    It takes effect at once for an activated interrupt (PCI/MSI vectors are activated
    at allocation), whether started or not.  Raises EINVAL for an empty or impossible
    mask, or a chip that cannot route.
    """
    desc = _desc(core, irq)
    mask = frozenset(cpus)
    bad = sorted(c for c in mask if c not in core.possible)
    if not mask or bad:
        raise KernelError(f"irq {irq}: affinity {sorted(mask)} names no possible CPU set "
                          f"(possible: 0..{core.ncpus - 1})", errno.EINVAL)
    with core.ctx.locked(desc.lock):
        return irq_set_affinity_locked(desc.irq_data, mask, force)


def irq_get_effective_affinity(core: IrqCore, irq: int) -> Cpumask:
    return _desc(core, irq).irq_data.common.effective_affinity


def irq_get_affinity(core: IrqCore, irq: int) -> Cpumask:
    return _desc(core, irq).irq_data.common.affinity


# -- trigger type ----------------------------------------------------------------------------------

def irq_set_irq_type(core: IrqCore, irq: int, flow_type: int) -> None:
    desc = _desc(core, irq)
    with core.ctx.locked(desc.lock):
        _set_irq_type(desc, flow_type)


def _set_irq_type(desc: IrqDesc, flow_type: int) -> None:
    d = desc.irq_data
    chip = d.chip
    flow_type &= IRQ_TYPE_SENSE_MASK
    if chip is None or chip.irq_set_type is None:
        d.set_trigger_type(flow_type)
        return
    unmask = False
    if chip.flags & IRQCHIP_SET_TYPE_MASKED:
        if not d.has(IRQD_IRQ_MASKED):
            mask_irq(desc)
        unmask = not d.has(IRQD_IRQ_DISABLED)
    try:
        chip.irq_set_type(d, flow_type)
        d.set_trigger_type(flow_type)
    finally:
        if unmask:
            unmask_irq(desc)


# -- irqchip state ---------------------------------------------------------------------------------

def _state_level(desc: IrqDesc, which: int, op: str) -> IrqData:
    d: IrqData | None = desc.irq_data
    while d is not None:
        chip = d.chip
        if chip is not None and getattr(chip, f"irq_{op}_irqchip_state") is not None:
            return d
        d = d.parent_data
    name = IRQCHIP_STATE_NAMES.get(which, str(which))
    raise KernelError(f"irq {desc.irq}: no chip in its hierarchy can {op} the {name} state",
                      errno.EINVAL)


def irq_set_irqchip_state(core: IrqCore, irq: int, which: int, value: bool) -> None:
    """Set PENDING / ACTIVE / MASKED at the first chip of the hierarchy that implements it."""
    desc = _desc(core, irq)
    d = _state_level(desc, which, "set")
    assert d.chip is not None and d.chip.irq_set_irqchip_state is not None
    discard = which == IRQCHIP_STATE_PENDING and not value
    core.discarding += discard
    try:
        with core.ctx.locked(desc.lock):
            d.chip.irq_set_irqchip_state(d, which, bool(value))
    finally:
        core.discarding -= discard


def irq_get_irqchip_state(core: IrqCore, irq: int, which: int) -> bool:
    """Read PENDING / ACTIVE / MASKED / LINE_LEVEL where the hierarchy can report it."""
    desc = _desc(core, irq)
    d = _state_level(desc, which, "get")
    assert d.chip is not None and d.chip.irq_get_irqchip_state is not None
    with core.ctx.locked(desc.lock):
        return d.chip.irq_get_irqchip_state(d, which)
