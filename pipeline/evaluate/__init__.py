"""Evaluation of harmonization (traveling-subject fidelity so far; issue 7 adds the rest)."""

from __future__ import annotations

from pipeline.evaluate.traveling import image_fidelity, traveling_fidelity

__all__ = ["image_fidelity", "traveling_fidelity"]
