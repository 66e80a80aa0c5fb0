"""Shared fixtures: small phantom cohorts generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.phantom import PhantomSpec, generate_phantom

SMALL_SPEC = PhantomSpec(sites=("adni", "oasis", "ukb"), subjects_per_site=12, traveling=2, resolution=4.0, seed=0)


@pytest.fixture(scope="session")
def small_phantom(tmp_path_factory: pytest.TempPathFactory):
    """3 sites x 12 subjects + 2 traveling subjects at 4 mm (about 5 s)."""
    return generate_phantom(tmp_path_factory.mktemp("phantom") / "bids", SMALL_SPEC, progress=False)


@pytest.fixture(scope="session")
def small_bids(small_phantom) -> Path:
    return small_phantom.root


CONTRAST_SITES = Path(__file__).parent / "data" / "contrast_sites.yaml"


@pytest.fixture(scope="session")
def contrast_pair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A preprocessed two-site phantom whose sites differ strongly in contrast (about 2.5 min).

    Sites ``dark`` and ``bright`` (tests/data/contrast_sites.yaml: controls aged 40-90), 20 subjects
    each plus 6 traveling subjects, 4 mm, age effect x3 (for the brain-age learning test),
    preprocessed with the phantom's true brain masks (skull stripping is tested elsewhere); returns
    the run folder holding ``preprocessed/`` and ``splits.tsv``.
    """
    from pipeline.phantom import Effects
    from pipeline.cohort import load_cohort, split_subjects, write_splits
    from pipeline.preprocess.batch import run_preprocess
    from pipeline.preprocess.config import preprocess_config_from_dict

    run = tmp_path_factory.mktemp("contrast_pair")
    spec = PhantomSpec(sites=("dark", "bright"), subjects_per_site=20, traveling=6, resolution=4.0, seed=0,
                       profiles=str(CONTRAST_SITES), effects=Effects(age=3.0))
    root = generate_phantom(run / "bids", spec, progress=False).root
    cohort = load_cohort(root)
    write_splits(split_subjects(cohort.table, (0.7, 0.15, 0.15), seed=0), run / "splits.tsv")
    truth = root / "derivatives" / "phantom"
    cohort.table["mask"] = [
        str(truth / f"sub-{r.subject}" / f"ses-{r.session}" / "anat" / f"sub-{r.subject}_ses-{r.session}_desc-brain_mask.nii.gz")
        if r.session else str(truth / f"sub-{r.subject}" / "anat" / f"sub-{r.subject}_desc-brain_mask.nii.gz")
        for r in cohort.table.itertuples()
    ]
    config = preprocess_config_from_dict({"skullstrip": {"method": "given"}, "output": {"qc_png": False}})
    result = run_preprocess(cohort, run / "preprocessed", config, workers=2, progress=False)
    assert len(result.failures) == 0, result.failures
    return run


AD_SITES = Path(__file__).parent / "data" / "ad_sites.yaml"


@pytest.fixture(scope="session")
def ad_pair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A preprocessed two-site phantom of CN and AD subjects for the classifier bundle (about 90 s).

    Sites ``clinica`` and ``clinicb`` (tests/data/ad_sites.yaml: half CN, half AD, ages 60-90), 20
    subjects each, 4 mm, AD effect x3 (exaggerated, for the learning test), splits 60/20/20, true brain
    masks; returns the run folder holding ``bids/``, ``preprocessed/`` and ``splits.tsv``.
    """
    from pipeline.cohort import load_cohort, split_subjects, write_splits
    from pipeline.phantom import Effects
    from pipeline.preprocess.batch import run_preprocess
    from pipeline.preprocess.config import preprocess_config_from_dict

    run = tmp_path_factory.mktemp("ad_pair")
    spec = PhantomSpec(sites=("clinica", "clinicb"), subjects_per_site=20, traveling=0, resolution=4.0, seed=1,
                       profiles=str(AD_SITES), effects=Effects(ad=3.0))
    root = generate_phantom(run / "bids", spec, progress=False).root
    cohort = load_cohort(root)
    write_splits(split_subjects(cohort.table, (0.6, 0.2, 0.2), seed=0), run / "splits.tsv")
    truth = root / "derivatives" / "phantom"
    cohort.table["mask"] = [str(truth / f"sub-{r.subject}" / "anat" / f"sub-{r.subject}_desc-brain_mask.nii.gz")
                            for r in cohort.table.itertuples()]
    config = preprocess_config_from_dict({"skullstrip": {"method": "given"}, "output": {"qc_png": False}})
    result = run_preprocess(cohort, run / "preprocessed", config, workers=2, progress=False)
    assert len(result.failures) == 0, result.failures
    return run
