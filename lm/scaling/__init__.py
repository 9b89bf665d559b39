"""Scaling studies: IsoFLOP grids, the sweep runner, scaling-law fits and their plots."""
