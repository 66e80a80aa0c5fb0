"""Evaluation: traveling-subject fidelity (harmonization), regression and classification metrics with
subject-level bootstrap intervals (``regression``, ``classification``, ``resampling``), the volume
baseline beside every CNN (``volume_baseline``), synthetic-image quality (``synthetic_quality``), paired
differences between augmentation arms (``paired_difference``), and the harmonization evaluation
(``harmonization``: ``site_probe``, ``tsne``, ``intensity_baselines``, ``combat``, ``regional_features``,
``biological_signal``)."""

from __future__ import annotations

from pipeline.evaluate.fidelity import image_fidelity
from pipeline.evaluate.traveling import traveling_fidelity

__all__ = ["image_fidelity", "traveling_fidelity"]
