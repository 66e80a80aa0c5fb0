"""The many_to_one_harmonization bundle through `python -m monai.bundle` (offline): train, resume, inference of every
site in one pass with unseen sites flagged (as `mriharmony harmonize` does), the model-zoo checks, and that learning
is real on seen and unseen sites."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from pipeline.harmonize import harmonize_cohort, load_generator, read_harmonizer_info
from pipeline.nets import ManyToOneNetworks, ResidualUNetGenerator3D
from pipeline.preprocess.batch import read_preprocessed
from pipeline.table_paths import read_table
from tests.bundles.model_zoo import check_bundle, stage
from tests.bundles.test_cyclegan_bundle import bundle

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "many_to_one_harmonization"
TRAIN = str(BUNDLE / "configs" / "train.yaml")
INFER = str(BUNDLE / "configs" / "inference.yaml")
NARROW = ["--net_kwargs#channels", "[4,8,8]", "--disc_kwargs#channels", "[4,8,8]"]


@pytest.fixture(scope="module")
def three_sites(contrast_pair, tmp_path_factory) -> Path:
    """contrast_pair's table as three sites: bright (the reference), dark, and 'darkb', five of dark's
    single-site subjects under another site name (a site the harmonizer is not trained on). The images are
    contrast_pair's own, read in place."""
    folder = tmp_path_factory.mktemp("three_sites") / "preprocessed"
    folder.mkdir()
    table = read_preprocessed(contrast_pair / "preprocessed")
    n_sites = table.groupby("subject")["site"].nunique()
    single = sorted(s for s in table.loc[table["site"] == "dark", "subject"] if n_sites[s] == 1)
    table.loc[table["subject"].isin(single[-5:]), "site"] = "darkb"
    table.to_csv(folder / "preprocessed.tsv", sep="\t", index=False)
    shutil.copy(contrast_pair / "splits.tsv", folder.parent / "splits.tsv")
    return folder


def _train(root: Path, dataset: Path, *extra: str) -> str:
    return bundle(
        "run",
        "--config_file",
        TRAIN,
        "--bundle_root",
        str(root),
        "--dataset_dir",
        str(dataset),
        "--reference_site",
        "bright",
        "--source_sites",
        "['dark']",
        "--batch_size",
        "2",
        *NARROW,
        *extra,
    )


@pytest.fixture(scope="module")
def trained(three_sites, tmp_path_factory) -> Path:
    """Two epochs of two iterations of a narrow many-to-one harmonizer at 64^3 (the size it then harmonizes):
    dark -> bright; darkb unseen."""
    root = tmp_path_factory.mktemp("m2o_run")
    _train(root, three_sites, "--epochs", "2", "--epoch_length", "2")
    return root


def test_train_writes_the_universal_generator_and_run_info_and_resume_continues(trained, three_sites):
    models = trained / "models"
    state = torch.load(models / "checkpoint_epoch=2.pt", weights_only=True)
    assert {"networks", "g_optimizer", "d_optimizer", "g_scheduler", "d_scheduler", "trainer", "info"} <= set(state)
    assert state["trainer"]["iteration"] == 4 and state["g_scheduler"]["last_epoch"] == 2
    nets = ManyToOneNetworks(["dark"], generator_channels=(4, 8, 8), discriminator_channels=(4, 8, 8))
    assert set(state["networks"]) == set(nets.state_dict())
    # model.pt is network_def's state dict: the universal generator, here the one of the best validation epoch
    universal = torch.load(models / "model.pt", weights_only=True)
    assert set(universal) == set(ResidualUNetGenerator3D(channels=(4, 8, 8)).state_dict())
    info = read_harmonizer_info(models / "model.pt")
    assert info == state["info"]
    assert info.kind == "many_to_one" and info["reference_site"] == "bright"
    assert info["source_sites"] == ["dark"] and info["unseen_sites"] == ["darkb"]
    traveling = {s for s in info["val_subjects"]}
    assert traveling and all(s.startswith("trav") for s in traveling)
    assert not traveling & set(info["train_subjects"])  # traveling subjects are never trained on
    assert not {s for s in info["train_subjects"] if s.startswith("dark")} & set(
        read_preprocessed(three_sites).query("site == 'darkb'")["subject"]
    )
    log = _train(trained, three_sites, "--epochs", "3", "--epoch_length", "2")
    assert "Epoch: 3/3" in log and "Epoch: 1/3" not in log and "Epoch: 2/3" not in log  # only the missing epoch
    state = torch.load(models / "checkpoint_epoch=3.pt", weights_only=True)
    assert state["trainer"]["iteration"] == 6 and state["g_scheduler"]["last_epoch"] == 3


def test_patch_training_crops_inside_the_images_and_validates_on_whole_ones(three_sites, tmp_path):
    """--patch_size: the training items are random 32^3 crops of the 64^3 images (a crop of the image, new each
    epoch, the same for the same seed and epoch), while validation works on whole images."""
    from monai.bundle import ConfigParser
    from monai.transforms import RandomizableTrait

    parser = ConfigParser()
    parser.read_config(TRAIN)
    parser.update(
        {
            "bundle_root": str(tmp_path),
            "dataset_dir": str(three_sites),
            "reference_site": "bright",
            "source_sites": ["dark"],
            "patch_size": [32, 32, 32],
        }
    )
    dataset = parser.get_parsed_content("train#dataset")
    items = dataset.pairs["dark"]
    first = items[0]
    assert first["x"].shape == first["y"].shape == (1, 32, 32, 32)
    path = parser.get_parsed_content("site_data").pairs["dark"].train_x[0]["image"]
    whole = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    patch = first["x"][0].numpy()
    assert whole.shape == (64, 64, 64) and patch.max() > 0
    # where the patch lies: line its brightest voxel up with every voxel of the image holding that value
    brightest = np.array(np.unravel_index(patch.argmax(), patch.shape))
    offsets = [
        o
        for o in np.argwhere(np.isclose(whole, patch.max(), atol=1e-6)) - brightest
        if (o >= 0).all() and (o <= 32).all()
    ]
    assert any(np.allclose(whole[a : a + 32, b : b + 32, c : c + 32], patch, atol=1e-6) for a, b, c in offsets)
    assert torch.equal(items[0]["x"], first["x"])  # same epoch: same crop
    items.set_epoch(1)
    assert not torch.equal(items[0]["x"], first["x"])  # next epoch: another crop
    validation = parser.get_parsed_content("validate#preprocessing")
    assert not any(isinstance(t, RandomizableTrait) for t in validation.transforms)  # no crop when validating


def test_inference_harmonizes_every_site_in_one_pass_and_flags_the_unseen_one(trained, three_sites, tmp_path):
    out = tmp_path / "harm"
    infer = ["run", "--config_file", INFER, "--bundle_root", str(trained), "--dataset_dir", str(three_sites)]
    infer += ["--output_dir", str(out), "--amp", "float32", "--net_kwargs#channels", "[4,8,8]"]
    bundle(*infer)
    table = read_table(out / "harmonized.tsv", keep_default_na=False)
    by_site = table.groupby("site")
    assert by_site["harmonized"].all().to_dict() == {"bright": False, "dark": True, "darkb": True}
    assert by_site["unseen_site"].all().to_dict() == {"bright": False, "dark": False, "darkb": True}
    assert not table.loc[table["site"] != "darkb", "unseen_site"].any()
    net = load_generator(trained / "models" / "model.pt")
    for site in ("dark", "darkb"):
        row = table[table["site"] == site].iloc[0]
        harmonized, source = nib.load(row["image_cube"]), nib.load(row["source_image_cube"])
        assert "harmonizedtobright" in row["image_cube"] and harmonized.shape == (64, 64, 64)
        np.testing.assert_allclose(harmonized.affine, source.affine)
        with torch.no_grad():
            expected = net(torch.from_numpy(source.get_fdata().astype(np.float32))[None, None])[0, 0].numpy()
        mask = nib.load(row["mask_cube"]).get_fdata() > 0
        np.testing.assert_allclose(harmonized.get_fdata(), expected * mask, atol=1e-5)
        sidecar = json.loads(Path(row["image_cube"].replace(".nii.gz", ".json")).read_text())
        assert sidecar["UnseenSite"] is (site == "darkb") and sidecar["OutputSite"] == "bright"
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["InputSites"] == ["dark", "darkb"] and description["UnseenSites"] == ["darkb"]
    assert description["Kind"] == "many_to_one"
    # the Dask path of `mriharmony harmonize` writes the same table and images
    cli = harmonize_cohort(read_preprocessed(three_sites), trained / "models" / "model.pt", tmp_path / "cli")
    columns = ["subject", "session", "site", "harmonized", "unseen_site", "status", "generator_sha256"]
    assert table[columns].equals(cli[columns].astype(table[columns].dtypes.to_dict()))
    for a, b in zip(table.loc[table["harmonized"], "image_cube"], cli.loc[cli["harmonized"], "image_cube"]):
        np.testing.assert_allclose(nib.load(a).get_fdata(), nib.load(b).get_fdata(), atol=1e-5)


def test_requests_a_many_to_one_harmonizer_cannot_serve_are_refused(trained, three_sites, tmp_path):
    table, model = read_preprocessed(three_sites), trained / "models" / "model.pt"
    with pytest.raises(ValueError, match="many-to-one harmonizer; it maps every site to its reference site 'bright'"):
        harmonize_cohort(table, model, tmp_path / "a", direction="to_source")
    with pytest.raises(ValueError, match="'bright' is the reference site"):
        harmonize_cohort(table, model, tmp_path / "b", sites=["dark", "bright"])
    with pytest.raises(ValueError, match=r"no images of \['nowhere'\]"):
        harmonize_cohort(table, model, tmp_path / "c", sites=["nowhere"])
    only = harmonize_cohort(table, model, tmp_path / "d", sites=["darkb"], progress=False)
    assert set(only.loc[only["harmonized"], "site"]) == {"darkb"} and only.loc[only["harmonized"], "unseen_site"].all()


def test_the_evaluation_scores_a_seen_and_an_unseen_site_and_leaves_combat_out_on_the_unseen(
    trained, three_sites, tmp_path, capsys
):
    """`mriharmony evaluate harmonization --site S` on a many-to-one folder: the condition is many_to_one, the
    evaluated site's images are the harmonized ones, and ComBat is compared on the seen site only."""
    from pipeline.cli import main
    from pipeline.experiments.harmonization_evaluation import COMBAT_UNSEEN

    harmonize_cohort(read_preprocessed(three_sites), trained / "models" / "model.pt", tmp_path / "harm")
    reports = {}
    for site in ("dark", "darkb"):
        args = ["evaluate", "harmonization", "--raw", str(three_sites), "--harmonized", str(tmp_path / "harm")]
        args += ["--site", site, "--out", str(tmp_path / site), "--split", "all", "--probes", "linear"]
        assert main([*args, "--resamples", "20"]) == 0
        reports[site] = json.loads((tmp_path / site / "evaluation.json").read_text())
    seen, unseen = reports["dark"], reports["darkb"]
    assert (seen["target_site"], seen["reference_site"], unseen["target_site"]) == ("dark", "bright", "darkb")
    assert seen["harmonizer_kinds"] == unseen["harmonizer_kinds"] == {"many_to_one": "many_to_one"}
    assert seen["conditions"] == ["identity", "many_to_one", "histogram", "zscore", "combat"]
    assert unseen["conditions"] == ["identity", "many_to_one", "histogram", "zscore"]
    assert not seen["unseen_site"] and seen["not_applicable"] == {}
    assert unseen["unseen_site"] and unseen["not_applicable"] == {"combat": COMBAT_UNSEEN}
    assert {r["condition"] for r in unseen["site_probe"]} == set(unseen["conditions"])
    assert seen["n_traveling"] > 0 and {r["condition"] for r in seen["traveling"]} >= {"identity", "many_to_one"}
    # the many_to_one features of the evaluated site are those of its harmonized images, the reference's raw
    features = read_table(tmp_path / "darkb" / "features.tsv", keep_default_na=False)
    wide = features.pivot_table(index=["subject", "site"], columns="condition", values="ventricles_mean")
    assert (wide.xs("bright", level="site")["many_to_one"] == wide.xs("bright", level="site")["identity"]).all()
    assert (wide.xs("darkb", level="site")["many_to_one"] != wide.xs("darkb", level="site")["identity"]).any()
    args = ["evaluate", "harmonization", "--raw", str(three_sites), "--harmonized", str(tmp_path / "harm")]
    assert main([*args, "--out", str(tmp_path / "x"), "--probes", "linear", "--resamples", "5"]) == 2
    assert "harmonizes ['dark', 'darkb'] -> bright: name the site to evaluate (--site)" in capsys.readouterr().err


def test_model_zoo_checks(trained, three_sites, tmp_path):
    """The model-zoo's checks on the bundle with the weights the trained fixture wrote (tests/bundles/model_zoo.py)."""
    data = {"dataset_dir": str(three_sites)}
    check_bundle(
        "many_to_one_harmonization",
        stage("many_to_one_harmonization", trained, tmp_path),
        example_input=torch.rand(1, 1, 32, 32, 32),
        net_overrides={"net_kwargs#channels": [4, 8, 8]},
        train_overrides={**data, "reference_site": "bright", "disc_kwargs#channels": [4, 8, 8]},
        infer_overrides=data,
    )


def _resized(path: str) -> torch.Tensor:
    image = torch.from_numpy(np.asarray(nib.load(path).dataobj, dtype=np.float32))[None, None]
    return F.interpolate(image, size=(32, 32, 32), mode="area")


def _held_out_ratios(model: Path, table: pd.DataFrame, subjects: list[str], sites: list[str]) -> dict[str, float]:
    """Per site, the held-out traveling subjects' in-brain MAE to their own reference-site (plain) images after
    harmonization, over the identity's."""
    net = load_generator(model)
    ratios = {}
    for site in sites:
        harmonized, identity = [], []
        for subject in subjects:
            rows = table[table["subject"] == subject].set_index("site")["image_cube"]
            x, y = _resized(rows[site]), _resized(rows["plain"])
            brain = (x > 0) | (y > 0)
            with torch.no_grad():
                harmonized.append(float((net(x) - y).abs()[brain].mean()))
            identity.append(float((x - y).abs()[brain].mean()))
        ratios[site] = float(np.mean(harmonized) / np.mean(identity))
    return ratios


# a learning measurement (a few minutes): in the slow set, which CI runs too
@pytest.mark.slow
def test_learning_is_real_on_seen_and_unseen_sites(many_sites, tmp_path):
    """Trained through the bundle on dark and deep against plain (tests/data/many_sites.yaml), three harmonizer
    seeds; half of the traveling subjects moved to the test split (neither trained on nor choosing the epoch). The
    universal generator must bring their images closer to the same subjects' plain images than they are: median
    over the seeds of harmonized / identity in-brain MAE below 0.8 at both seen sites and at dusk, which it never
    saw. With lr 0 (learning broken) the generator stays the identity and every ratio is 1."""
    table = read_preprocessed(many_sites / "preprocessed")
    n_sites = table.groupby("subject")["site"].nunique()
    traveling = sorted(n_sites[n_sites > 1].index)
    held_out = traveling[::2]
    splits = pd.read_csv(many_sites / "splits.tsv", sep="\t", dtype={"subject": str})
    splits["split"] = [
        ("test" if s in held_out else ("val" if s in traveling else split))
        for s, split in zip(splits["subject"], splits["split"])
    ]
    splits.to_csv(tmp_path / "splits.tsv", sep="\t", index=False)
    ratios: dict[str, list[float]] = {"dark": [], "deep": [], "dusk": []}
    runs = ((0, "1e-3"), (1, "1e-3"), (2, "1e-3"), (0, "0"))

    def train(seed: int, lr: str) -> Path:
        root = tmp_path / f"seed{seed}-lr{lr}"
        bundle(
            "run",
            "--config_file",
            TRAIN,
            "--bundle_root",
            str(root),
            "--dataset_dir",
            str(many_sites / "preprocessed"),
            "--splits_file",
            str(tmp_path / "splits.tsv"),
            "--reference_site",
            "plain",
            "--source_sites",
            "['dark','deep']",
            "--seed",
            str(seed),
            "--lr",
            lr,
            "--epochs",
            "20" if lr != "0" else "1",  # at lr 0 no epoch moves a weight: one is the same control, 5 min sooner
            "--spatial_size",
            "[32,32,32]",
            "--net_kwargs#channels",
            "[8,16,32]",
            "--disc_kwargs#channels",
            "[16,32,64]",
            threads=1,
        )
        return root

    # two trainings side by side, one thread each: the runs are independent, and this test is the slow suite's
    # longest, often left alone on the machine at the end
    with ThreadPoolExecutor(max_workers=2) as pool:
        roots = list(pool.map(lambda run: train(*run), runs))
    for (seed, lr), root in zip(runs, roots):
        info = read_harmonizer_info(root / "models" / "model.pt")
        assert info["unseen_sites"] == ["dusk"]
        assert not set(held_out) & (set(info["train_subjects"]) | set(info["val_subjects"]))
        found = _held_out_ratios(root / "models" / "model.pt", table, held_out, list(ratios))
        if lr == "0":
            assert found == pytest.approx({site: 1.0 for site in ratios})
        else:
            for site, value in found.items():
                ratios[site].append(value)
    medians = {site: float(np.median(values)) for site, values in ratios.items()}
    assert all(value < 0.8 for value in medians.values()), (medians, ratios)


def test_condition_names_and_kinds_of_older_records(tmp_path):
    """Pairwise and many-to-one folders side by side are named by kind, with seeds where a kind repeats; a run
    record written before kinds existed reads as a pairwise CycleGAN."""
    from pipeline.experiments.harmonization_evaluation import HarmonizedFolder, _condition_names
    from pipeline.harmonize import HarmonizerInfo

    def folder(kind: str) -> HarmonizedFolder:
        return HarmonizedFolder(tmp_path, kind, ("oasis",), "ukb", ())

    kinds = [folder("many_to_one"), folder("many_to_one"), folder("cyclegan")]
    assert _condition_names(kinds) == ["many_to_one_seed0", "many_to_one_seed1", "cyclegan"]
    old = HarmonizerInfo({"source_site": "ukb", "target_site": "oasis", "net_kwargs": {"channels": 4}})
    assert old.kind == "cyclegan" and old.seen_sites == ["ukb", "oasis"] and old.output_site("to_source") == "ukb"
    new = HarmonizerInfo({"kind": "many_to_one", "reference_site": "ukb", "source_sites": ["adni"], "net_kwargs": {}})
    assert new.seen_sites == ["adni", "ukb"] and new.output_site("to_target") == "ukb"
    assert isinstance(new.network(), ResidualUNetGenerator3D)
    with pytest.raises(ValueError, match="takes every site but the reference"):
        new.input_site("to_target")
