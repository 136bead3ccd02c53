"""Mapping official checkpoints onto mfsbench modules by key, strictly."""
