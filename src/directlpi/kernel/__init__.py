"""The Linux-style software: genirq core, irq domains, the GICv3 driver, LPI infrastructure.

Names mirror Linux (``kernel/irq/``, ``drivers/irqchip/irq-gic-v3.c``).  The
kernel drives the hardware model only through bus accesses, RAM and ICC_*
system registers.
"""
