"""Downstream benchmarks of harmonization: the brain-age benchmark (pooled, held-out and cross-site protocols,
``brain_age``) with its harmonizer seeds (``harmonizers``), and downstream learning against simple baselines
(``downstream_learning``)."""
