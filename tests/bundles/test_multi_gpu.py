"""Each trainable bundle's multi-GPU overlay through the real launcher: `torchrun --standalone --nproc_per_node=2
-m monai.bundle run ...` on CPU (gloo). Both ranks must end with the same parameters (DDP all-reduces gradients;
BatchNorm running statistics are per rank on CPU, synchronised with SyncBatchNorm on GPUs), and only rank 0
may write checkpoints and logs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
RANK_WEIGHTS = REPO / "tests" / "data" / "rank_weights.yaml"
RANK_WEIGHTS_CYCLEGAN = REPO / "tests" / "data" / "rank_weights_cyclegan.yaml"
RANK_WEIGHTS_CONDITIONAL = REPO / "tests" / "data" / "rank_weights_conditional.yaml"
RANK_WEIGHTS_MANY_TO_ONE = REPO / "tests" / "data" / "rank_weights_many_to_one.yaml"
CONFIGS = {
    "cyclegan_harmonization": ("train", "multi_gpu_train", RANK_WEIGHTS_CYCLEGAN),
    "many_to_one_harmonization": ("train", "multi_gpu_train", RANK_WEIGHTS_MANY_TO_ONE),
    "synthetic_augmentation": ("train", "multi_gpu_train", RANK_WEIGHTS_CONDITIONAL),
}


def _torchrun(bundle: str, overrides: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    train, multi_gpu, rank_weights = CONFIGS.get(bundle, ("train", "multi_gpu_train", RANK_WEIGHTS))
    configs = [str(REPO / "bundles" / bundle / "configs" / f"{stem}.yaml") for stem in (train, multi_gpu)]
    configs.append(str(rank_weights))
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        str(configs).replace(" ", ""),
        "--weights_dir",
        str(tmp_path),
        *overrides,
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)


@pytest.mark.parametrize(
    "bundle, extra",
    [
        ("brain_age", ["--net_kwargs#channels", "[4,8,8,16,16]", "--net_kwargs#hidden", "16"]),
        ("ad_classification", ["--task", "cn_ad", "--net_kwargs#widths", "[4,8,8,16]", "--channels_last", "true"]),
    ],
)
def test_two_ranks_train_the_same_weights_and_only_rank_0_writes(bundle, extra, request, tmp_path):
    data = request.getfixturevalue("contrast_pair" if bundle == "brain_age" else "ad_pair") / "preprocessed"
    root = tmp_path / "run"
    result = _torchrun(
        bundle,
        [
            "--bundle_root",
            str(root),
            "--dataset_dir",
            str(data),
            "--epochs",
            "2",
            "--batch_size",
            "2",
            "--spatial_size",
            "[16,16,16]",
            *extra,
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    saved = torch.load(root / "models" / "model.pt", weights_only=True)
    saved = saved.get("model", saved)  # ignite stores a single object's state dict unwrapped
    assert set(rank0) <= set(saved)  # saved without DDP's "module." prefix, loadable by inference
    assert all(torch.equal(saved[k], rank0[k]) for k in rank0)
    assert sorted(p.name for p in (root / "models").iterdir()) == ["model.pt"]
    events = list((root / "logs").glob("events.out.tfevents.*"))
    assert len(events) == 1  # one TensorBoard writer: rank 0's
    # each rank trained on its half of the training subjects: two 'Epoch[2] Complete' lines, one per process
    assert (result.stdout + result.stderr).count("Trainer - INFO - Epoch[2] Complete") == 2


def test_cyclegan_two_ranks_keep_four_networks_identical_and_only_rank_0_writes(contrast_pair, tmp_path):
    root = tmp_path / "run"
    result = _torchrun(
        "cyclegan_harmonization",
        [
            "--bundle_root",
            str(root),
            "--dataset_dir",
            str(contrast_pair / "preprocessed"),
            "--source_site",
            "dark",
            "--target_site",
            "bright",
            "--epochs",
            "2",
            "--batch_size",
            "1",
            "--spatial_size",
            "[32,32,32]",
            "--net_kwargs#channels",
            "4",
            "--net_kwargs#n_residual",
            "1",
            "--disc_kwargs#channels",
            "4",
            "--model_selection",
            "final",
        ],
        tmp_path,
    )  # final: models/model.pt holds the last weights
    assert result.returncode == 0, result.stderr[-4000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert {k.split(".")[0] for k in rank0} == {"g_xy", "g_yx", "d_x", "d_y"}
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    for name, net in (("model.pt", "g_xy."), ("model_to_source.pt", "g_yx.")):
        model = torch.load(root / "models" / name, weights_only=True)  # without DDP's "module." prefix
        assert all(torch.equal(model[k.split(".", 1)[1]], v) for k, v in rank0.items() if k.startswith(net))
    assert {p.name for p in (root / "models").iterdir()} <= {
        "model.pt",
        "model_to_source.pt",
        "run_info.json",
        "best_cycle_mae.pt",
        "best_cycle_mae_to_source.pt",
        "checkpoint_epoch=2.pt",
    }
    assert len(list((root / "logs").glob("events.out.tfevents.*"))) == 1
    # each rank ran both epochs on its half of the draws
    assert (result.stdout + result.stderr).count("Trainer - INFO - Epoch[2] Complete") == 2


def test_many_to_one_two_ranks_keep_every_network_identical_and_only_rank_0_writes(contrast_pair, tmp_path):
    """Every generator and discriminator is its own DDP module (the trainer calls each on its own): after two
    epochs both ranks hold the same weights, and models/model.pt is the universal generator's, unwrapped."""
    root = tmp_path / "run"
    result = _torchrun(
        "many_to_one_harmonization",
        [
            "--bundle_root",
            str(root),
            "--dataset_dir",
            str(contrast_pair / "preprocessed"),
            "--reference_site",
            "bright",
            "--epochs",
            "2",
            "--batch_size",
            "1",
            "--spatial_size",
            "[32,32,32]",
            "--net_kwargs#channels",
            "[4,8]",
            "--disc_kwargs#channels",
            "[4,8]",
            "--model_selection",
            "final",
        ],
        tmp_path,
    )  # final: models/model.pt holds the last weights
    assert result.returncode == 0, result.stderr[-4000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    groups = {".".join(k.split(".")[:2]) if not k.startswith("universal") else "universal" for k in rank0}
    assert groups == {"universal", "backward.dark", "reference_discriminators.dark", "source_discriminators.dark"}
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    model = torch.load(root / "models" / "model.pt", weights_only=True)  # without DDP's "module." prefix
    universal = {k.split(".", 1)[1]: v for k, v in rank0.items() if k.startswith("universal.")}
    assert universal and all(torch.equal(model[k], v) for k, v in universal.items())
    assert len(list((root / "logs").glob("events.out.tfevents.*"))) == 1
    assert (result.stdout + result.stderr).count("Trainer - INFO - Epoch[2] Complete") == 2


def test_conditional_gan_two_ranks_keep_both_networks_identical(ad_pair, tmp_path):
    root = tmp_path / "run"
    result = _torchrun(
        "synthetic_augmentation",
        [
            "--bundle_root",
            str(root),
            "--dataset_dir",
            str(ad_pair / "preprocessed"),
            "--epochs",
            "2",
            "--batch_size",
            "2",
            "--spatial_size",
            "16",
            "--net_kwargs#channels",
            "8",
            "--net_kwargs#latent_dim",
            "8",
            "--disc_kwargs#channels",
            "8",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert {k.split(".")[0] for k in rank0} == {"generator", "discriminator"}
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    saved = torch.load(root / "models" / "model.pt", weights_only=True)  # network_def: the generator's wrapper
    assert all(torch.equal(saved[k], v) for k, v in rank0.items() if k.startswith("generator."))
    assert sorted(p.name for p in (root / "models").iterdir()) == ["model.pt", "run_info.json"]
    assert len(list((root / "logs").glob("events.out.tfevents.*"))) == 1
    assert (result.stdout + result.stderr).count("Trainer - INFO - Epoch[2] Complete") == 2


@pytest.mark.parametrize("bundle", ["brain_age", "ad_classification"])
def test_gpu_switches_reach_the_trainer(bundle):
    """--amp true --amp_dtype bfloat16 --channels_last true: autocast dtype and memory format of network and batches
    (MONAI's SupervisedTrainer autocasts on CUDA only, so on CPU amp stays inert)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / bundle / "configs" / "train.yaml"))
    parser.update({"amp": "true", "amp_dtype": "bfloat16", "channels_last": "true"})  # as the command line gives them
    trainer = parser.get("train#trainer")
    assert parser.get_parsed_content("train#trainer#amp") is True
    assert trainer["prepare_batch"]["memory_format"] == "@memory_format"
    assert parser.get_parsed_content("train#trainer#amp_kwargs") == {"dtype": torch.bfloat16}
    assert parser.get_parsed_content("memory_format") == torch.channels_last_3d
    assert "memory_format=@memory_format" in parser.get("network")
    prepare = parser.get_parsed_content("train#trainer#prepare_batch")
    image, label = prepare({"image": torch.zeros(2, 1, 4, 4, 4), "label": torch.zeros(2, dtype=torch.long)}, "cpu")
    assert image.is_contiguous(memory_format=torch.channels_last_3d) and label.shape == (2,)
