"""A device with a wired interrupt line to a GIC SPI (level or edge).

The device asserts its line when it wants service; a level-sensitive device
keeps it asserted until its driver acknowledges the condition (``ack()``), as a
real device's status register would.
"""

from __future__ import annotations

from collections.abc import Callable

# Trigger flags of the devicetree interrupt binding (dt-bindings/interrupt-controller/irq.h).
DT_IRQ_TYPE_EDGE_RISING = 1
DT_IRQ_TYPE_LEVEL_HIGH = 4


class WiredDevice:
    """A device whose interrupt output drives SPI ``spi`` of the GIC."""

    def __init__(self, name: str, spi: int, set_line: Callable[[int, bool], None], *,
                 level: bool = True) -> None:
        self.name = name
        self.spi = spi
        self.level = level
        self._set_line = set_line
        self.asserted = False
        self.raised = 0

    @property
    def trigger(self) -> int:
        """The trigger flag firmware would describe for this line (DT binding values)."""
        return DT_IRQ_TYPE_LEVEL_HIGH if self.level else DT_IRQ_TYPE_EDGE_RISING

    def raise_irq(self) -> None:
        """Signal an interrupt: a level device asserts until acked, an edge device pulses."""
        self.raised += 1
        if self.level:
            self.asserted = True
            self._set_line(self.spi, True)
        else:
            self._set_line(self.spi, True)
            self._set_line(self.spi, False)

    def ack(self) -> None:
        """The driver cleared the condition: a level device deasserts its line."""
        if self.level and self.asserted:
            self.asserted = False
            self._set_line(self.spi, False)
