"""``/proc/interrupts`` in Linux's layout (``kernel/irq/proc.c`` ``show_interrupts``).

One column per online CPU, then the chip name, the hwirq, the trigger
("Level"/"Edge") and the action names; interrupts without an action are not
shown, as in Linux.  The last line, ``Err:``, counts interrupts nobody handled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from directlpi.kernel.irq.desc import IRQD_LEVEL

if TYPE_CHECKING:
    from directlpi.kernel.irq.core import IrqCore


def show_interrupts(core: IrqCore, extra: list[tuple[str, list[int], str]] | None = None) -> str:
    cpus = sorted(core.online)
    descs = [d for d in core.active_descs()
             if not d.hidden and (d.actions or any(d.kstat[c] for c in cpus))]
    prec, j = 3, 1000
    while prec < 10 and j <= max((d.irq for d in core.descs.values()), default=0):
        prec, j = prec + 1, j * 10
    lines = [" " * (prec + 8) + "".join(f"CPU{c:<8}" for c in cpus).rstrip()]
    for desc in descs:
        d = desc.irq_data
        counts = "".join(f"{desc.kstat[c]:10} " for c in cpus)
        chip = d.chip.name if d.chip is not None else "-"
        trigger = "Level" if d.has(IRQD_LEVEL) else "Edge"
        names = ", ".join(a.name for a in desc.actions)
        lines.append(f"{desc.irq:>{prec}}: {counts} {chip:>8} {d.hwirq:>{prec}} {trigger:<8}"
                     f"  {names}".rstrip())
    for label, counts_by_cpu, what in extra or []:
        counts = "".join(f"{counts_by_cpu[c]:10} " for c in cpus)
        lines.append(f"{label:>{prec}}: {counts}  {what}".rstrip())
    lines.append(f"{'Err':>{prec}}: {core.spurious_count:10}")
    return "\n".join(lines)
