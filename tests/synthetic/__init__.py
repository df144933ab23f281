"""Synthetic kernels: drgn programs built in Python, one per kernel layout."""
