"""Apply a trained harmonization generator to a cohort: every preprocessed 64^3 image of the
chosen site(s) goes through G: site -> reference site.

Reads the table written by ``mriharmony preprocess`` (``preprocessed.tsv``), writes one harmonized
image per row in BIDS-derivatives naming and ``harmonized.tsv`` (the same columns, ``image_cube``
pointing at the harmonized image, plus ``harmonized`` and ``generator_sha256``) that the later
stages read like the preprocessed table. The brain mask is applied to the output so the
background stays 0. Re-runs skip rows whose output exists and was made by the same checkpoint.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from pipeline.atomic import save_nifti, write_table
from pipeline.nets import HarmonizationGenerator3D

__all__ = ["load_generator", "harmonize_table", "file_sha256"]


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_generator(path: str | Path, *, key: str = "g_xy", **net_kwargs: Any) -> HarmonizationGenerator3D:
    """Load a generator from a state dict file, or from a training checkpoint's ``key`` entry.

    Args:
        path: ``.pt`` file (loaded with ``weights_only=True``: no code runs from the file).
        key: entry of a training checkpoint holding the generator (``g_xy``: X -> reference).
        net_kwargs: architecture arguments (``channels``, ``n_residual``) if not the paper's.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"generator checkpoint {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and key in state and isinstance(state[key], dict):
        state = state[key]
    net = HarmonizationGenerator3D(**net_kwargs)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{path}: the weights do not fit a generator with {net_kwargs or 'the paper defaults'} "
                         f"({str(exc).splitlines()[0]})") from None
    return net.eval()


def _output_path(out: Path, row: pd.Series, target: str) -> Path:
    session = str(row.get("session") or "")
    folder = out / f"sub-{row['subject']}" / (f"ses-{session}" if session else "") / "anat"
    stem = f"sub-{row['subject']}" + (f"_ses-{session}" if session else "")
    return folder / f"{stem}_space-MNI152NLin2009aSym_res-64_desc-harmonizedto{target}_T1w.nii.gz"


def harmonize_table(table: pd.DataFrame, checkpoint: str | Path, out: str | Path, *, target: str,
                    sites: list[str] | None = None, device: str = "cpu", progress: bool = True,
                    **net_kwargs: Any) -> pd.DataFrame:
    """Harmonize the ``image_cube`` images of ``sites`` (default: every site but ``target``) to ``target``.

    Rows of other sites (and of the target) are passed through unchanged with ``harmonized=False``.
    Returns the harmonized table, also written to ``out/harmonized.tsv``.
    """
    out = Path(out)
    sha = file_sha256(checkpoint)
    generator = load_generator(checkpoint, **net_kwargs).to(device)
    sites = sites if sites is not None else sorted(set(table["site"]) - {target})
    previous = {}
    if (out / "harmonized.tsv").exists():
        old = pd.read_csv(out / "harmonized.tsv", sep="\t", keep_default_na=False)
        previous = dict(zip(old["image_cube"], old.get("generator_sha256", pd.Series(dtype=str))))
    rows = []
    todo = table[table["site"].isin(sites)]
    bar = tqdm(total=len(todo), desc="harmonize", unit="image", disable=not progress)
    for _, row in table.iterrows():
        record = row.to_dict()
        if row["site"] not in sites:
            rows.append({**record, "harmonized": False, "generator_sha256": ""})
            continue
        target_path = _output_path(out, row, target)
        if not (target_path.exists() and previous.get(str(target_path)) == sha):
            img = nib.load(row["image_cube"])
            mask = np.asarray(nib.load(row["mask_cube"]).dataobj) > 0
            x = torch.from_numpy(np.asarray(img.dataobj, dtype=np.float32))[None, None].to(device)
            with torch.no_grad():
                y = generator(x)[0, 0].cpu().numpy() * mask
            result = nib.Nifti1Image(y.astype(np.float32), img.affine)
            result.set_qform(img.affine, code=4)
            result.set_sform(img.affine, code=4)
            save_nifti(target_path, result)
        rows.append({**record, "image_cube": str(target_path), "source_image_cube": row["image_cube"],
                     "harmonized": True, "generator_sha256": sha})
        bar.update()
    bar.close()
    result_table = pd.DataFrame(rows)
    write_table(out / "harmonized.tsv", result_table)
    return result_table
