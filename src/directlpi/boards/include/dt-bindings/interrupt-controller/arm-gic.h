/* SPDX-License-Identifier: MIT */
/*
 * Interrupt specifiers of the Arm GIC bindings (arm,gic-v3 and earlier), for
 * devicetree sources preprocessed by directlpi (cpp -D__DTS__).  Written for
 * directlpi with the binding's values, so that a board using the kernel's names
 * compiles unchanged.
 *
 * An interrupt specifier is three cells: <type number flags>.
 */
#ifndef DIRECTLPI_DT_BINDINGS_ARM_GIC_H
#define DIRECTLPI_DT_BINDINGS_ARM_GIC_H

#include <dt-bindings/interrupt-controller/irq.h>

/* Cell 0, the interrupt type; cell 1 is then the number within that type. */
#define GIC_SPI		0	/* shared peripheral interrupt: INTID = 32 + number */
#define GIC_PPI		1	/* private peripheral interrupt: INTID = 16 + number */
#define GIC_ESPI	2	/* extended SPI range (GICv3.1; not modelled) */
#define GIC_EPPI	3	/* extended PPI range (GICv3.1; not modelled) */

/*
 * Cell 2, the flags: an IRQ_TYPE_* trigger in bits 3:0; for PPIs of a GICv2
 * (not a GICv3), the CPUs the interrupt is wired to in bits 15:8.
 */
#define GIC_CPU_MASK_RAW(mask)		((mask) << 8)
#define GIC_CPU_MASK_SIMPLE(ncpus)	GIC_CPU_MASK_RAW((1 << (ncpus)) - 1)

#endif
