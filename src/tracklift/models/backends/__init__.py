"""Sparse-convolution backends; ``torch`` is the always-available reference."""
