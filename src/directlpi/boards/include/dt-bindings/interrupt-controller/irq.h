/* SPDX-License-Identifier: MIT */
/*
 * Trigger types of an interrupt specifier's flags cell, for devicetree sources
 * preprocessed by directlpi (cpp -D__DTS__).  Written for directlpi; the values
 * are the devicetree's (the same as Linux's IRQ_TYPE_*), so a board written
 * against the kernel's header compiles to the same blob.
 */
#ifndef DIRECTLPI_DT_BINDINGS_IRQ_H
#define DIRECTLPI_DT_BINDINGS_IRQ_H

#define IRQ_TYPE_NONE		0	/* unspecified */
#define IRQ_TYPE_EDGE_RISING	1
#define IRQ_TYPE_EDGE_FALLING	2
#define IRQ_TYPE_EDGE_BOTH	(IRQ_TYPE_EDGE_RISING | IRQ_TYPE_EDGE_FALLING)
#define IRQ_TYPE_LEVEL_HIGH	4
#define IRQ_TYPE_LEVEL_LOW	8

#endif
