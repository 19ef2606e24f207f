"""Workloads run on a platform: the hardware walkthrough, scenarios, invariant checking."""
