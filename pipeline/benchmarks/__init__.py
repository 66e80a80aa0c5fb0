"""Downstream benchmarks of harmonization (the brain-age protocol of 004)."""
