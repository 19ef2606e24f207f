"""Interrupt controller drivers (Linux ``drivers/irqchip/``)."""
