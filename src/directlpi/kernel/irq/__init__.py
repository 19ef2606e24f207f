"""The generic interrupt core (Linux ``kernel/irq/``)."""
