"""The silicon: a GICv3 without an ITS, per Arm IHI 0069, one module per block.

* :mod:`~directlpi.hw.regs` -- the one register map (offsets, fields, access kinds)
* :mod:`~directlpi.hw.mmio` -- the per-frame dispatcher built from it
* :mod:`~directlpi.hw.memory` -- sparse physical memory
* :mod:`~directlpi.hw.cache` -- the PEs' data cache, for redistributors that do not snoop it
* :mod:`~directlpi.hw.bus` -- address decoding, bus masters
* :mod:`~directlpi.hw.distributor` -- GICD
* :mod:`~directlpi.hw.redistributor` -- GICR (RD_base with Direct LPI, SGI_base)
* :mod:`~directlpi.hw.cpuif` -- ICC_* system registers
* :mod:`~directlpi.hw.events` -- observation
* :mod:`~directlpi.hw.machine` -- assembly and the default memory map
"""
