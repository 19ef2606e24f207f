"""Firmware descriptions: ACPI tables (and, next, devicetree) in, a board description out."""
