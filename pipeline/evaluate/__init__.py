"""Evaluation: traveling-subject fidelity (harmonization), regression and classification metrics with
subject-level bootstrap intervals (``regression``, ``classification``, ``resampling``), the volume
baseline beside every CNN (``volume_baseline``) and synthetic-image quality (``synthetic_quality``).
Site probe, t-SNE and the harmonization baselines come with issue 7."""

from __future__ import annotations

from pipeline.evaluate.traveling import image_fidelity, traveling_fidelity

__all__ = ["image_fidelity", "traveling_fidelity"]
