"""Causal estimation: per-action uplift models and average effects, doubly robust with cross-fitting."""
