"""Calibration of the phantom's site effects, measured after the real preprocessing chain.

Traveling subjects only (the same anatomy at both sites), so nothing but the scanner can tell the sites
apart: with the default profiles' site effects (UK Biobank-like vs OASIS-1-like) the linear site probe
must beat a stated floor; with site effects off (``Effects(site=0)``: every site rendered like the
reference scanner) it must sit at chance. Both directions, so a phantom that lost its site effects, or
one whose "site" signal came from something other than the scanner, fails.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluate.site_probe import site_probe
from pipeline.phantom import Effects, PhantomSpec
from pipeline.preprocess.batch import read_preprocessed

#: The traveling-subject probe on real scanners' preprocessed T1 is near perfect (Glocker et al. 2019
#: report scanners told apart almost perfectly); the phantom must at least reach this.
FLOOR_WITH_SITE_EFFECTS = 0.85
#: Chance is 0.5 for two sites; leave-subject-out folds on identical anatomy scatter around it.
CEILING_WITHOUT_SITE_EFFECTS = 0.70


def _traveling_probe(tmp_path, site_effect: float) -> float:
    from pipeline.experiments.downstream_learning import prepare_phantom

    spec = PhantomSpec(
        sites=("ukb", "oasis"),
        subjects_per_site=0,
        traveling=10,
        resolution=4.0,
        seed=5,
        effects=Effects(site=site_effect),
    )
    run = tmp_path / f"site{site_effect:g}"
    table = read_preprocessed(prepare_phantom(run, spec, fractions=(0.6, 0.2, 0.2), workers=2))
    assert len(table) == 20 and table["subject"].nunique() == 10
    return float(
        np.median([site_probe(table, probe="linear", seed=s, n_resamples=50)["balanced_accuracy"] for s in range(3)])
    )


@pytest.mark.slow
def test_site_effects_on_are_found_and_off_sit_at_chance(tmp_path):
    on = _traveling_probe(tmp_path, 1.0)
    off = _traveling_probe(tmp_path, 0.0)
    assert on >= FLOOR_WITH_SITE_EFFECTS, on
    assert off <= CEILING_WITHOUT_SITE_EFFECTS, off
