"""The phantom: deterministic, valid BIDS, truthful ground truth, effects in the right direction."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.phantom import Effects, PhantomSpec, build_anatomy, generate_phantom, load_template
from pipeline.phantom.calibrate import anatomy_table, task_difficulty
from pipeline.phantom.scanner import load_site_profiles
from pipeline.phantom.template import TEMPLATE_NAME, template_labels

TINY = PhantomSpec(sites=("adni", "hospital"), subjects_per_site=2, traveling=1, resolution=4.0, seed=7)


def _arrays(root: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(root)): np.asarray(nib.load(p).dataobj) for p in sorted(root.rglob("*.nii.gz"))}


def test_deterministic(tmp_path):
    a = generate_phantom(tmp_path / "a", TINY, progress=False, workers=2)
    b = generate_phantom(tmp_path / "b", TINY, progress=False, workers=1)  # worker count must not matter
    arrays_a, arrays_b = _arrays(a.root), _arrays(b.root)
    assert arrays_a.keys() == arrays_b.keys() and len(arrays_a) == 4 * 6 + 1
    for key in arrays_a:
        np.testing.assert_array_equal(arrays_a[key], arrays_b[key], err_msg=key)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    c = generate_phantom(tmp_path / "c", PhantomSpec(**{**TINY.__dict__, "seed": 8}), progress=False)
    assert not np.array_equal(
        _arrays(c.root)["sub-adni001/anat/sub-adni001_T1w.nii.gz"], arrays_a["sub-adni001/anat/sub-adni001_T1w.nii.gz"]
    )


def test_resume_keeps_complete_dataset(tmp_path):
    first = generate_phantom(tmp_path / "p", TINY, progress=False)
    image = first.root / first.truth.loc[0, "path"]
    mtime = image.stat().st_mtime_ns
    again = generate_phantom(tmp_path / "p", TINY, progress=False)
    assert again.reused and image.stat().st_mtime_ns == mtime
    image.unlink()  # an incomplete dataset is regenerated
    assert not generate_phantom(tmp_path / "p", TINY, progress=False).reused and image.exists()


def test_bids_valid(small_bids):
    from bids_validator import BIDSValidator

    validator = BIDSValidator()
    raw_files = [p for p in small_bids.rglob("*") if p.is_file() and "derivatives" not in p.parts]
    invalid = [str(p) for p in raw_files if not validator.is_bids("/" + str(p.relative_to(small_bids)))]
    assert invalid == []
    description = json.loads((small_bids / "dataset_description.json").read_text())
    assert description["DatasetType"] == "raw" and description["BIDSVersion"]
    participants = pd.read_csv(small_bids / "participants.tsv", sep="\t")
    assert list(participants.columns[:5]) == ["participant_id", "age", "sex", "diagnosis", "site"]
    assert participants["participant_id"].str.match(r"^sub-[A-Za-z0-9]+$").all()
    assert (small_bids / "sub-trav01" / "ses-adni" / "anat" / "sub-trav01_ses-adni_T1w.nii.gz").exists()
    deriv = json.loads((small_bids / "derivatives/phantom/dataset_description.json").read_text())
    assert deriv["DatasetType"] == "derivative"


def _to_template(path: Path, transform: Path, resolution: float, nearest: bool = True) -> np.ndarray:
    """Resample a native-space image onto the template grid with the stored ground-truth transform."""
    labels, affine = template_labels(resolution)
    reference = sitk.GetImageFromArray(np.zeros(labels.shape[::-1], np.float32))
    reference.SetSpacing([float(resolution)] * 3)
    reference.SetOrigin((-affine[0, 3], -affine[1, 3], affine[2, 3]))  # RAS -> LPS
    reference.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    moving = sitk.ReadImage(str(path), sitk.sitkFloat32)
    out = sitk.Resample(
        moving,
        reference,
        sitk.ReadTransform(str(transform)),
        sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear,
        0.0,
    )
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _truth_files(root: Path, row: pd.Series) -> tuple[Path, Path, Path]:
    stem = Path(row["path"]).name.replace("_T1w.nii.gz", "")
    folder = root / "derivatives" / "phantom" / Path(row["path"]).parent
    return (
        folder / f"{stem}_desc-brain_mask.nii.gz",
        folder / f"{stem}_dseg.nii.gz",
        folder / f"{stem}_from-T1w_to-{TEMPLATE_NAME}_mode-image_xfm.txt",
    )


def test_transform_and_mask_agree_with_anatomy(small_phantom, tmp_path):
    """The true mask mapped through the true rigid transform lands on the subject's anatomy in template space."""
    spec = small_phantom.truth
    template = load_template(4.0)
    _, sites = load_site_profiles()
    from pipeline.phantom.generate import plan_subjects
    from tests.conftest import SMALL_SPEC

    jobs = {job.subject: job for job in plan_subjects(SMALL_SPEC, sites)}
    dices, unregistered = [], []
    for _, row in spec[spec["session"] == ""].head(6).iterrows():
        mask_path, dseg_path, xfm = _truth_files(small_phantom.root, row)
        mapped = _to_template(mask_path, xfm, 4.0) > 0.5
        anatomy = build_anatomy(template, jobs[row["subject"]].latent, SMALL_SPEC.effects)
        own_brain = anatomy.maps[:3].sum(0) > 0.5
        assert _dice(mapped, own_brain) > 0.93, row["subject"]
        # against the template brain only approximately: 6-DOF leaves head size and shape differences
        assert _dice(mapped, template.brain > 0.5) > 0.8, row["subject"]
        dices.append(_dice(mapped, own_brain))
        identity = tmp_path / "identity.txt"
        sitk.WriteTransform(sitk.AffineTransform(3), str(identity))
        unregistered.append(_dice(_to_template(mask_path, identity, 4.0) > 0.5, own_brain))
    # the pose matters: without the transform the masks land clearly worse
    assert np.mean(unregistered) < np.mean(dices) - 0.1


def test_traveling_subjects_share_anatomy_not_intensities(small_phantom):
    truth = small_phantom.truth
    trav = truth[truth["subject"] == "trav01"]
    assert list(trav["site"]) == ["adni", "oasis", "ukb"] and trav["latent_id"].nunique() == 1
    masks, ratios = [], []
    for _, row in trav.iterrows():
        mask_path, dseg_path, xfm = _truth_files(small_phantom.root, row)
        masks.append(_to_template(mask_path, xfm, 4.0) > 0.5)
        image = np.asanyarray(nib.load(small_phantom.root / row["path"]).dataobj).astype(float)
        dseg = np.asarray(nib.load(dseg_path).dataobj)
        wm = np.median(image[dseg == 3])
        ratios.append(np.array([np.median(image[dseg == 1]), np.median(image[dseg == 2])]) / wm)  # CSF/WM, GM/WM
    for other in masks[1:]:
        assert _dice(masks[0], other) > 0.93
    assert len(set(trav["ventricles_ml"].round(6))) == 1  # one anatomy
    for i in range(3):  # but every pair of sites shows a different contrast
        for j in range(i + 1, 3):
            assert np.linalg.norm(ratios[i] - ratios[j]) > 0.025


def test_effects_point_the_right_way():
    spec = PhantomSpec(sites=("adni", "oasis", "hospital"), subjects_per_site=50, traveling=0, resolution=4.0, seed=3)
    table = anatomy_table(spec)
    cn = table[table["diagnosis"] == "CN"]
    rho, _ = stats.spearmanr(cn["age"], cn["ventricles_ml"])
    assert rho > 0.35  # ventricles grow with age
    rho_h, _ = stats.spearmanr(cn["age"], cn["hippocampus_ml"] / cn["brain_ml"])
    assert rho_h < -0.2  # hippocampi shrink with age
    # AD hippocampus below CN at equal age: regression on age + diagnosis
    sub = table[table["diagnosis"].isin(["CN", "AD"])]
    x = np.column_stack([np.ones(len(sub)), sub["age"], (sub["diagnosis"] == "AD").astype(float)])
    y = sub["hippocampus_ml"] / sub["brain_ml"] * 1000
    coef, res, *_ = np.linalg.lstsq(x, y, rcond=None)
    sigma2 = res[0] / (len(y) - 3)
    t_ad = coef[2] / np.sqrt(sigma2 * np.linalg.inv(x.T @ x)[2, 2])
    assert coef[2] < 0 and t_ad < -4
    hard = task_difficulty(table)
    assert hard["brain_age_mae"] < hard["brain_age_mae_mean_baseline"] - 0.5  # learnable
    assert 0.65 < hard["cn_vs_ad_balanced_accuracy"] < 0.97  # neither trivial nor impossible

    flat = anatomy_table(PhantomSpec(**{**spec.__dict__, "effects": Effects(age=0.0, ad=0.0), "subjects_per_site": 25}))
    rho0, _ = stats.spearmanr(flat["age"], flat["ventricles_ml"])
    assert abs(rho0) < 0.3  # the age multiplier switches the effect off


def test_sites_are_told_apart_by_intensity_statistics(small_phantom):
    truth = small_phantom.truth
    features = []
    for _, row in truth.iterrows():
        image = np.asanyarray(nib.load(small_phantom.root / row["path"]).dataobj).astype(float)
        image /= np.percentile(image, 99.5)
        head = image[image > 0.1]
        features.append(np.percentile(head, [5, 10, 25, 50, 75, 90, 95]).tolist() + [head.std(), (image < 0.1).mean()])
    pred = cross_val_predict(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        np.array(features),
        truth["site"],
        cv=GroupKFold(4),
        groups=truth["subject"],
    )
    assert balanced_accuracy_score(truth["site"], pred) > 0.8  # chance is 0.33


def test_anatomy_labels_in_template_space():
    labels, affine = template_labels(2.0)
    voxel_ml = abs(np.linalg.det(affine[:3, :3])) / 1000
    assert 15 < (labels == 4).sum() * voxel_ml < 30  # lateral ventricles of a young adult template
    assert 5 < (labels == 5).sum() * voxel_ml < 8  # both hippocampi
    # the hippocampi are left and right of the midline, below the ventricles
    ijk = np.argwhere(labels == 5)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    assert (xyz[:, 0] < 0).sum() == pytest.approx((xyz[:, 0] > 0).sum(), rel=0.05)
    assert xyz[:, 2].mean() < (np.argwhere(labels == 4) @ affine[:3, :3].T + affine[:3, 3])[:, 2].mean()


REFERENCE = "reference: {contrast: {csf: 0.2, gm: 0.6, wm: 1, bone: 0, marrow: 0.5, scalp: 0.9}}\nsites:\n  x: "


@pytest.mark.parametrize(
    "text, message",
    [
        (
            REFERENCE + "{demographics: {age_mean: 70, age_sd: 5, age_min: 50, age_max: 90}, scanner: {colour: 3}}",
            r"sites.x.scanner: unknown key\(s\) \['colour'\]",
        ),
        (
            REFERENCE
            + "{demographics: {age_mean: 70, age_sd: 5, age_min: 50, age_max: 90}, scanner: {orientation: RRS}}",
            r"sites.x.scanner.orientation: expected a 3-letter code",
        ),
        (
            REFERENCE + "{demographics: {age_mean: 70, age_sd: 5, age_min: 50, age_max: 90, diagnosis: {CN: 0.5}}}",
            r"sites.x.demographics.diagnosis: expected proportions of CN/MCI/AD summing to 1",
        ),
        (
            REFERENCE + "{demographics: {age_mean: 70}}",
            r"sites.x.demographics: missing key\(s\) \['age_max', 'age_min', 'age_sd'\]",
        ),
    ],
)
def test_bad_site_profiles_fail_clearly(tmp_path, text, message):
    path = tmp_path / "sites.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_site_profiles(path)


def test_shrinking_ventricles_keep_every_occupancy_within_one():
    """A young subject whose ventricles come out smaller than the template's (factor < 1) used to get tissue
    scaled by rest1 / rest0 at the soft ventricle boundary: occupancy up to hundreds, ventricles rendered
    brighter than WM (the study's QC gate stopped such a traveling subject at every site)."""
    from pipeline.phantom.anatomy import Effects, LatentSubject, build_anatomy
    from pipeline.phantom.template import load_template

    template = load_template(4.0)
    for seed in range(40):
        anatomy = build_anatomy(template, LatentSubject("s", 30.0, "M", "CN", (seed,)), Effects(individual=2.0))
        if anatomy.params["ventricle_factor"] < 0.6:
            break
    else:
        pytest.fail("no subject with shrinking ventricles among 40 seeds")
    tissue = anatomy.channel("csf") + anatomy.channel("gm") + anatomy.channel("wm")
    assert tissue.max() <= 1.0 + 1e-3 and anatomy.maps.min() >= -1e-6
