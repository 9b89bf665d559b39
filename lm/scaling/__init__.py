"""Scaling studies: IsoFLOP grids, the sweep (results table, orchestration, workers), scaling-law
fits, their diagnostics and plots."""
