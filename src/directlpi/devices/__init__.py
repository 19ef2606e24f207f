"""Devices: how interrupts leave a device (a wired line, or an MSI written on the bus)."""
