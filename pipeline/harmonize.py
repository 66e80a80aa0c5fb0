"""Apply a trained harmonization generator to a cohort: every preprocessed 64^3 image of the
chosen site(s) goes through G (site -> other site).

A checkpoint written by the cyclegan_harmonization bundle (``models/model.pt``) holds both
generators and an ``info`` record (sites, architecture). ``direction="to_target"`` applies
G_X (source site -> target site) to source-site images; ``"to_source"`` applies G_Y to target-site
images. Reads the table written by ``mriharmony preprocess`` (``preprocessed.tsv``) and writes:

- one harmonized image per row of the input site, in BIDS-derivatives naming
  (``..._res-64_desc-harmonizedto<SITE>_T1w.nii.gz``), float32, same affine as its input, brain
  mask applied (background stays 0), with a JSON sidecar (checkpoint, its SHA-256, direction,
  sites, input image) written last;
- ``harmonized.tsv``: every row of the input table (rows of other sites unchanged), with
  ``image_cube`` pointing at the harmonized image, ``status`` ok / failed, ``harmonized``, and
  ``generator_sha256``, so later stages read it exactly like the preprocessed table;
- ``failures.tsv`` and ``dataset_description.json``.

Images run subject-parallel on Dask (see :mod:`pipeline.parallel`); a re-run skips images whose
sidecar names the same checkpoint hash and direction; a bad image is recorded, never fatal.
"""

from __future__ import annotations

import os

import hashlib
import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from pipeline import __version__
from pipeline.atomic import save_nifti, write_json, write_table
from pipeline.nets import HarmonizationGenerator3D
from pipeline.parallel import map_rows
from pipeline.table_paths import resolve_paths

__all__ = ["DIRECTIONS", "HarmonizerInfo", "file_sha256", "read_harmonizer_info", "load_generator",
           "harmonize_image", "harmonize_cohort", "read_harmonized"]

DIRECTIONS = ("to_target", "to_source")
FAILURE_COLUMNS = ["subject", "session", "site", "source", "step", "reason"]


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class HarmonizerInfo(dict):
    """The ``info`` record of a bundle checkpoint: source_site, target_site, net_kwargs, ..."""

    def input_site(self, direction: str) -> str:
        return self["source_site"] if direction == "to_target" else self["target_site"]

    def output_site(self, direction: str) -> str:
        return self["target_site"] if direction == "to_target" else self["source_site"]


def _load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"generator checkpoint {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)  # weights only: no code runs from the file
    if not isinstance(state, dict) or "info" not in state or not {"g_xy", "g_yx"} <= set(state):
        raise ValueError(f"{path}: expected a cyclegan_harmonization checkpoint with entries 'g_xy', 'g_yx' and "
                         f"'info' (models/model.pt of a bundle run); found {sorted(state)[:8] if isinstance(state, dict) else type(state).__name__}")
    return state


def read_harmonizer_info(path: str | Path) -> HarmonizerInfo:
    """Sites and architecture stored in a bundle checkpoint."""
    info = HarmonizerInfo(_load_checkpoint(path)["info"])
    for key in ("source_site", "target_site", "net_kwargs"):
        if key not in info:
            raise ValueError(f"{path}: checkpoint info has no {key!r}")
    return info


def load_generator(path: str | Path, direction: str = "to_target") -> HarmonizationGenerator3D:
    """The generator of ``direction`` from a bundle checkpoint, in eval mode."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    state = _load_checkpoint(path)
    net = HarmonizationGenerator3D(**dict(state["info"].get("net_kwargs", {})))
    try:
        net.load_state_dict(state["g_xy" if direction == "to_target" else "g_yx"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: the weights do not fit a generator with {state['info'].get('net_kwargs')} "
                         f"({str(exc).splitlines()[0]})") from None
    return net.eval()


@lru_cache(maxsize=2)
def _cached_generator(path: str, sha: str, direction: str) -> HarmonizationGenerator3D:
    return load_generator(path, direction)  # once per worker process and checkpoint


def _output_path(out: Path, row: dict, output_site: str) -> Path:
    session = str(row.get("session") or "")
    folder = out / f"sub-{row['subject']}" / (f"ses-{session}" if session else "") / "anat"
    stem = f"sub-{row['subject']}" + (f"_ses-{session}" if session else "")
    return folder / f"{stem}_space-MNI152NLin2009aSym_res-64_desc-harmonizedto{output_site}_T1w.nii.gz"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name.replace(".nii.gz", ".json"))


def harmonize_image(row: dict, checkpoint: str, sha: str, out: str, direction: str, output_site: str, *,
                    trained_size: list[int] | None = None, device: str = "cpu",
                    threads: int | None = None) -> dict[str, Any]:
    """Harmonize one table row; never raises for a bad image (the record says what failed).

    ``trained_size``: the image size the generator was trained at; other sizes are refused (a
    convolutional generator runs on them, but what it learned is tied to the voxel scale).
    """
    if threads:
        torch.set_num_threads(threads)
    target_path = _output_path(Path(out), row, output_site)
    record = {**row, "image_cube": str(target_path), "source_image_cube": row["image_cube"], "harmonized": True,
              "generator_sha256": sha, "direction": direction, "status": "ok", "step": "", "reason": "",
              "resumed": False}
    sidecar = _sidecar(target_path)
    if target_path.exists() and sidecar.exists():
        done = json.loads(sidecar.read_text())
        if done.get("GeneratorSHA256") == sha and done.get("Direction") == direction:
            return {**record, "resumed": True}
    step = "load"
    try:
        img = nib.load(row["image_cube"])
        data = np.asarray(img.dataobj, dtype=np.float32)
        mask = np.asarray(nib.load(row["mask_cube"]).dataobj) > 0
        if data.ndim != 3 or mask.shape != data.shape:
            raise ValueError(f"expected a 3D image and a mask of the same shape, got {data.shape} and {mask.shape}")
        if trained_size and tuple(data.shape) != tuple(trained_size):
            raise ValueError(f"image is {data.shape[0]}x{data.shape[1]}x{data.shape[2]} but the generator was trained "
                             f"at {'x'.join(map(str, trained_size))} (train with spatial_size equal to the images' size)")
        step = "generator"
        generator = _cached_generator(checkpoint, sha, direction).to(device)
        start = time.perf_counter()
        with torch.no_grad():
            y = generator(torch.from_numpy(data)[None, None].to(device))[0, 0].cpu().numpy() * mask
        step = "write"
        result = nib.Nifti1Image(y.astype(np.float32), img.affine)
        result.set_qform(img.affine, code=4)
        result.set_sform(img.affine, code=4)
        save_nifti(target_path, result)
        write_json(sidecar, {"Checkpoint": str(checkpoint), "GeneratorSHA256": sha, "Direction": direction,
                             "InputSite": row["site"], "OutputSite": output_site, "Source": row["image_cube"],
                             "Seconds": round(time.perf_counter() - start, 3), "Version": __version__})
        return record
    except Exception as exc:  # noqa: BLE001 - a bad image is recorded, never fatal
        return {**record, "image_cube": "", "harmonized": False, "status": "failed", "step": step,
                "reason": f"{type(exc).__name__}: {exc}"}


def harmonize_cohort(table: pd.DataFrame, checkpoint: str | Path, out: str | Path, *, direction: str = "to_target",
                     sites: list[str] | None = None, workers: int | None = 0, scheduler: str | None = None,
                     device: str = "cpu", progress: bool = True) -> pd.DataFrame:
    """Harmonize the ``image_cube`` images of ``sites`` (default: the generator's input site).

    Args:
        table: the preprocessed table (``read_preprocessed``): site, image_cube, mask_cube, ...
        checkpoint: a cyclegan_harmonization checkpoint (``models/model.pt``).
        out: output folder.
        direction: ``to_target`` (G_X: source -> target) or ``to_source`` (G_Y: target -> source).
        sites: sites to run through the generator. Other sites than the generator's input site are
            refused: the generator was not trained on them.
        workers, scheduler: Dask (see :func:`pipeline.parallel.map_rows`); ``workers=0`` runs here.

    Returns the harmonized table, also written to ``out/harmonized.tsv``.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    missing = {"subject", "site", "image_cube", "mask_cube"} - set(table.columns)
    if missing:
        raise ValueError(f"table: missing column(s) {sorted(missing)}; expected the table of `mriharmony preprocess`")
    out = Path(os.path.abspath(out))  # workers get absolute paths; tables store them relative to themselves
    info = read_harmonizer_info(checkpoint)
    if info.get("domain_key", "site") != "site":
        raise ValueError(f"{checkpoint} translates between {info['domain_key']} values ({info['source_site']} <-> "
                         f"{info['target_site']}), not sites: it is a synthetic-image generator, not a harmonizer")
    input_site, output_site = info.input_site(direction), info.output_site(direction)
    sites = sites or [input_site]
    wrong = [s for s in sites if s != input_site]
    if wrong:
        raise ValueError(f"sites {wrong}: the {direction} generator of {checkpoint} maps {input_site} -> "
                         f"{output_site}; it was not trained on other sites")
    if input_site not in set(table["site"]):
        raise ValueError(f"site {input_site!r} has no images in the table (sites: {sorted(set(table['site']))})")
    sha = file_sha256(checkpoint)
    rows = [r.to_dict() for _, r in table.iterrows()]
    todo = [r for r in rows if r["site"] in sites]
    records = map_rows(harmonize_image, todo, str(Path(checkpoint).resolve()), sha, str(out), direction, output_site,
                       trained_size=info.get("spatial_size"), device=device, workers=workers, scheduler=scheduler,
                       progress=progress, desc="harmonize")
    passed = [{**r, "harmonized": False, "generator_sha256": "", "direction": "", "status": "ok", "step": "",
               "reason": "", "resumed": False} for r in rows if r["site"] not in sites]
    result = pd.DataFrame(passed + records).sort_values(["subject", "session"]).reset_index(drop=True)
    failed = result.loc[result["status"] == "failed"]
    failures = pd.DataFrame({"subject": failed["subject"], "session": failed.get("session", ""), "site": failed["site"],
                             "source": failed["source_image_cube"], "step": failed["step"], "reason": failed["reason"]})
    write_table(out / "harmonized.tsv", result)
    write_table(out / "failures.tsv", failures.reindex(columns=FAILURE_COLUMNS))
    write_json(out / "dataset_description.json", {
        "Name": f"mriharmony harmonized T1w ({input_site} -> {output_site})", "BIDSVersion": "1.9.0",
        "DatasetType": "derivative", "GeneratedBy": [{"Name": "mriharmony-harmonize", "Version": __version__}],
        "Checkpoint": str(checkpoint), "GeneratorSHA256": sha, "Direction": direction,
        "InputSite": input_site, "OutputSite": output_site, "NetKwargs": dict(info["net_kwargs"]),
    })
    return result


def read_harmonized(out: str | Path, *, only_ok: bool = True) -> pd.DataFrame:
    """The table written by :func:`harmonize_cohort` (by default only rows that succeeded)."""
    table = pd.read_csv(Path(out) / "harmonized.tsv", sep="\t", dtype={"subject": str, "session": str},
                        keep_default_na=False, na_values=["n/a"])
    table = resolve_paths(table, out)
    table["session"] = table["session"].fillna("")
    return table[table["status"] == "ok"].reset_index(drop=True) if only_ok else table
