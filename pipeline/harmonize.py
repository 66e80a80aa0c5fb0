"""Apply a trained harmonization generator to a cohort: every preprocessed 64^3 image of the
chosen site(s) goes through G (site -> other site).

A harmonizer is named by a bundle's ``models/model.pt``, with the run record (sites, architecture, training
subjects) in ``run_info.json`` beside it. Two kinds exist (``run_info.json``'s ``kind``):

- ``cyclegan`` (the cyclegan_harmonization bundle): ``model.pt`` is G_X (source site -> target site, the
  reference), ``model_to_source.pt`` is G_Y. ``direction="to_target"`` applies G_X to source-site images;
  ``"to_source"`` applies G_Y to target-site images. Other sites are refused.
- ``many_to_one`` (the many_to_one_harmonization bundle): ``model.pt`` is the universal generator, which maps
  every site to the reference site in one pass, the sites it never saw in training included; those are
  flagged ``unseen_site`` in the table and ``UnseenSite`` in the sidecar.

Reads the table written by ``mriharmony preprocess`` (``preprocessed.tsv``) and writes:

- one harmonized image per row of the input site(s), in BIDS-derivatives naming
  (``..._res-64_desc-harmonizedto<SITE>_T1w.nii.gz``), float32, same affine as its input, brain
  mask applied (background stays 0), with a JSON sidecar (checkpoint, its SHA-256, direction,
  sites, whether the input site is unseen, input image) written last;
- ``harmonized.tsv``: every row of the input table (rows of other sites unchanged), with
  ``image_cube`` pointing at the harmonized image, ``status`` ok / failed, ``harmonized``, and
  ``generator_sha256``, so later stages read it exactly like the preprocessed table;
- ``failures.tsv`` and ``dataset_description.json``.

Images run subject-parallel on Dask (see :mod:`pipeline.parallel`); a re-run skips images whose
sidecar names the same checkpoint hash and direction; a bad image is recorded, never fatal.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from pipeline import __version__
from pipeline.atomic import save_nifti, write_json, write_table
from pipeline.nets import HarmonizationGenerator3D, ResidualUNetGenerator3D
from pipeline.parallel import map_rows
from pipeline.run import StageMarker, file_sha256
from pipeline.table_paths import resolve_paths

__all__ = [
    "DIRECTIONS",
    "GENERATOR_FILES",
    "HarmonizerInfo",
    "generator_file",
    "save_harmonizer",
    "read_harmonizer_info",
    "load_generator",
    "HarmonizationPlan",
    "plan_harmonization",
    "write_harmonized_image",
    "harmonize_image",
    "harmonize_cohort",
    "read_harmonized",
]

DIRECTIONS = ("to_target", "to_source")
KINDS = ("cyclegan", "many_to_one")
FAILURE_COLUMNS = ["subject", "session", "site", "source", "step", "reason"]

log = logging.getLogger("mriharmony.harmonize")


class HarmonizerInfo(dict):
    """The run record of a harmonizer (its ``run_info.json``): kind, sites, net_kwargs, spatial_size, ..."""

    @property
    def kind(self) -> str:
        """``cyclegan`` (one site pair; records written before kinds existed are this) or ``many_to_one``."""
        return str(self.get("kind", "cyclegan"))

    @property
    def seen_sites(self) -> list[str]:
        """The sites whose images the generator(s) trained on, the reference included."""
        if self.kind == "many_to_one":
            return [*self["source_sites"], self["reference_site"]]
        return [self["source_site"], self["target_site"]]

    def input_site(self, direction: str) -> str:
        if self.kind == "many_to_one":
            raise ValueError("a many-to-one harmonizer takes every site but the reference: see input_sites")
        return self["source_site"] if direction == "to_target" else self["target_site"]

    def output_site(self, direction: str) -> str:
        if self.kind == "many_to_one":
            return self["reference_site"]
        return self["target_site"] if direction == "to_target" else self["source_site"]

    def network(self) -> torch.nn.Module:
        """An untrained generator of this harmonizer's architecture."""
        net_kwargs = dict(self.get("net_kwargs", {}))
        if self.kind == "many_to_one":
            return ResidualUNetGenerator3D(**net_kwargs)
        return HarmonizationGenerator3D(**net_kwargs)


#: the generator file of each direction in a cyclegan_harmonization bundle's ``models/`` folder
GENERATOR_FILES = {"to_target": "model.pt", "to_source": "model_to_source.pt"}


def generator_file(checkpoint: str | Path, direction: str) -> Path:
    """The weights file of ``direction`` for a harmonizer named by its ``models/model.pt``."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return Path(checkpoint).with_name(GENERATOR_FILES[direction])


def save_harmonizer(folder: str | Path, g_xy: torch.nn.Module, g_yx: torch.nn.Module, info: dict[str, Any]) -> Path:
    """Write a harmonizer in the bundle's layout (``model.pt``, ``model_to_source.pt``, ``run_info.json``);
    returns the path of ``model.pt``, which names the harmonizer everywhere."""
    from pipeline.atomic import atomic_path
    from pipeline.engines.checkpoints import RUN_INFO_FILE

    folder = Path(folder)
    write_json(folder / RUN_INFO_FILE, dict(info))
    for direction, net in (("to_target", g_xy), ("to_source", g_yx)):
        with atomic_path(folder / GENERATOR_FILES[direction]) as tmp:
            torch.save(net.state_dict(), tmp)
    return folder / GENERATOR_FILES["to_target"]


def read_harmonizer_info(path: str | Path) -> HarmonizerInfo:
    """Sites and architecture of the harmonizer whose ``models/model.pt`` is ``path`` (its run_info.json)."""
    from pipeline.engines.checkpoints import read_run_info

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"generator checkpoint {path} does not exist")
    info = HarmonizerInfo(read_run_info(path))
    if info.kind not in KINDS:
        raise ValueError(f"{path.with_name('run_info.json')}: kind {info.kind!r}; expected one of {KINDS}")
    required = ("reference_site", "source_sites") if info.kind == "many_to_one" else ("source_site", "target_site")
    for key in (*required, "net_kwargs"):
        if key not in info:
            raise ValueError(
                f"{path.with_name('run_info.json')}: no {key!r}; expected the run record of a "
                f"{info.kind.replace('_', '-')} harmonization bundle"
            )
    return info


def load_generator(path: str | Path, direction: str = "to_target") -> torch.nn.Module:
    """The generator of ``direction`` of the harmonizer whose ``models/model.pt`` is ``path``, in eval mode.

    ``to_target`` loads ``model.pt`` itself (the bundle's ``network_def``), ``to_source`` the
    ``model_to_source.pt`` beside it (pairwise harmonizers only); weights only, no code runs from the files.
    """
    info = read_harmonizer_info(path)
    if info.kind == "many_to_one" and direction != "to_target":
        raise ValueError(f"{path}: a many-to-one harmonizer only maps to its reference site (direction to_target)")
    weights = generator_file(path, direction)
    if not weights.exists():
        raise FileNotFoundError(f"{weights} does not exist: the {direction} generator of {path} is missing")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        keys = sorted(state)[:8] if isinstance(state, dict) else ""
        raise ValueError(
            f"{weights}: expected the state dict of a generator (models/model.pt of a harmonization bundle's "
            f"run); found {type(state).__name__} with keys {keys}"
        )
    net = info.network()
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(
            f"{weights}: the weights do not fit a generator with {info.get('net_kwargs')} ({str(exc).splitlines()[0]})"
        ) from None
    return net.eval()


@lru_cache(maxsize=2)
def _cached_generator(path: str, sha: str, direction: str) -> torch.nn.Module:
    return load_generator(path, direction)  # once per worker process and checkpoint


def _output_path(out: Path, row: dict, output_site: str) -> Path:
    session = str(row.get("session") or "")
    folder = out / f"sub-{row['subject']}" / (f"ses-{session}" if session else "") / "anat"
    stem = f"sub-{row['subject']}" + (f"_ses-{session}" if session else "")
    return folder / f"{stem}_space-MNI152NLin2009aSym_res-64_desc-harmonizedto{output_site}_T1w.nii.gz"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name.replace(".nii.gz", ".json"))


def _base_record(row: dict, target_path: Path, sha: str, direction: str, unseen: bool = False) -> dict[str, Any]:
    return {
        **row,
        "image_cube": str(target_path),
        "source_image_cube": row["image_cube"],
        "harmonized": True,
        "unseen_site": unseen,
        "generator_sha256": sha,
        "direction": direction,
        "status": "ok",
        "step": "",
        "reason": "",
        "resumed": False,
    }


def _resume_marker(target_path: Path, sha: str, direction: str, precision: str = "float32") -> StageMarker:
    """The image's resume record, kept in its sidecar: the generator's digest, direction and precision."""
    return StageMarker(
        _sidecar(target_path),
        {"direction": direction, "precision": precision},
        digests={"generator": sha},
        key="Resume",
    )


def _already_done(target_path: Path, sha: str, direction: str, precision: str = "float32") -> bool:
    """Whether a previous run wrote this image with the same generator, direction and precision."""
    return _resume_marker(target_path, sha, direction, precision).is_complete(target_path)


def _failed(record: dict, step: str, exc: Exception) -> dict[str, Any]:
    return {
        **record,
        "image_cube": "",
        "harmonized": False,
        "status": "failed",
        "step": step,
        "reason": f"{type(exc).__name__}: {exc}",
    }


def _check_size(shape: tuple[int, ...], trained_size: list[int] | None) -> None:
    if trained_size and tuple(shape) != tuple(trained_size):
        raise ValueError(
            f"image is {'x'.join(map(str, shape))} but the generator was trained at "
            f"{'x'.join(map(str, trained_size))} (train with spatial_size equal to the images' size)"
        )


def write_harmonized_image(
    target_path: Path,
    image: np.ndarray,
    affine: np.ndarray,
    *,
    checkpoint: str,
    sha: str,
    direction: str,
    input_site: str,
    output_site: str,
    source: str,
    seconds: float | None = None,
    precision: str = "float32",
    unseen: bool = False,
) -> None:
    """Write one harmonized image (float32, the input's affine as qform and sform) and then its sidecar,
    which marks it complete for a resumed run. ``seconds``: the generator's time, when measured per image;
    ``unseen``: the input site was never trained on (a many-to-one harmonizer generalising)."""
    result = nib.Nifti1Image(np.asarray(image, dtype=np.float32), affine)
    result.set_qform(affine, code=4)
    result.set_sform(affine, code=4)
    save_nifti(target_path, result)
    sidecar = {
        "Checkpoint": str(checkpoint),
        "GeneratorSHA256": sha,
        "Direction": direction,
        "InputSite": input_site,
        "OutputSite": output_site,
        "UnseenSite": bool(unseen),
        "Source": source,
        "Precision": precision,
        "Version": __version__,
        "Resume": _resume_marker(target_path, sha, direction, precision).record(),
    }
    if seconds is not None:
        sidecar["Seconds"] = round(seconds, 3)
    write_json(_sidecar(target_path), sidecar)


def harmonize_image(
    row: dict,
    checkpoint: str,
    sha: str,
    out: str,
    direction: str,
    output_site: str,
    *,
    trained_size: list[int] | None = None,
    device: str = "cpu",
    threads: int | None = None,
    amp: str | None = None,
    unseen_sites: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Harmonize one table row; never raises for a bad image (the record says what failed).

    ``trained_size``: the image size the generator was trained at; other sizes are refused (a
    convolutional generator runs on them, but what it learned is tied to the voxel scale).
    ``amp``: None (fp32) or the autocast dtype name (``bfloat16``; ``float16`` on CUDA).
    ``unseen_sites``: the sites the generator never trained on (flagged in the record and the sidecar).
    """
    if threads:
        torch.set_num_threads(threads)
    target_path = _output_path(Path(out), row, output_site)
    unseen = row["site"] in unseen_sites
    record = _base_record(row, target_path, sha, direction, unseen)
    precision = amp or "float32"
    if _already_done(target_path, sha, direction, precision):
        return {**record, "resumed": True}
    step = "load"
    try:
        img = nib.load(row["image_cube"])
        data = np.asarray(img.dataobj, dtype=np.float32)
        mask = np.asarray(nib.load(row["mask_cube"]).dataobj) > 0
        if data.ndim != 3 or mask.shape != data.shape:
            raise ValueError(f"expected a 3D image and a mask of the same shape, got {data.shape} and {mask.shape}")
        _check_size(data.shape, trained_size)
        step = "generator"
        generator = _cached_generator(checkpoint, sha, direction).to(device)
        start = time.perf_counter()
        x = torch.from_numpy(data)[None, None].to(device)
        with torch.no_grad(), torch.autocast(x.device.type, dtype=getattr(torch, precision), enabled=amp is not None):
            y = generator(x)[0, 0].float().cpu().numpy() * mask
        step = "write"
        write_harmonized_image(
            target_path,
            y,
            img.affine,
            checkpoint=checkpoint,
            sha=sha,
            direction=direction,
            input_site=row["site"],
            output_site=output_site,
            source=row["image_cube"],
            seconds=time.perf_counter() - start,
            precision=precision,
            unseen=unseen,
        )
        return record
    except Exception as exc:  # noqa: BLE001 - a bad image is recorded, never fatal
        return _failed(record, step, exc)


@dataclass(frozen=True)
class HarmonizationPlan:
    """What one harmonization run does: which harmonizer, direction and sites, over which table rows, into
    which folder. Built and checked by :func:`plan_harmonization`; both the Dask path
    (:func:`harmonize_cohort`) and the bundle's inference workflow run one."""

    checkpoint: Path
    out: Path
    direction: str
    info: HarmonizerInfo
    sites: tuple[str, ...]
    sha: str
    rows: tuple[dict, ...]

    @property
    def output_site(self) -> str:
        return self.info.output_site(self.direction)

    @property
    def unseen_sites(self) -> tuple[str, ...]:
        """The sites harmonized here that the generator never trained on."""
        return tuple(s for s in self.sites if s not in self.info.seen_sites)

    @property
    def todo(self) -> list[dict]:
        """The rows that go through the generator."""
        return [r for r in self.rows if r["site"] in self.sites]

    def target_path(self, row: dict) -> Path:
        return _output_path(self.out, row, self.output_site)

    def write_cohort(self, records: list[dict]) -> pd.DataFrame:
        """``harmonized.tsv`` (every row: the records of the harmonized ones, the others passed through),
        ``failures.tsv`` and ``dataset_description.json``; returns the table."""
        passed = [
            {
                **r,
                "harmonized": False,
                "unseen_site": False,
                "generator_sha256": "",
                "direction": "",
                "status": "ok",
                "step": "",
                "reason": "",
                "resumed": False,
            }
            for r in self.rows
            if r["site"] not in self.sites
        ]
        result = pd.DataFrame(passed + records).sort_values(["subject", "session"]).reset_index(drop=True)
        failed = result.loc[result["status"] == "failed"]
        failures = pd.DataFrame(
            {
                "subject": failed["subject"],
                "session": failed.get("session", ""),
                "site": failed["site"],
                "source": failed["source_image_cube"],
                "step": failed["step"],
                "reason": failed["reason"],
            }
        )
        write_table(self.out / "harmonized.tsv", result)
        write_table(self.out / "failures.tsv", failures.reindex(columns=FAILURE_COLUMNS))
        write_json(
            self.out / "dataset_description.json",
            {
                "Name": f"mriharmony harmonized T1w ({', '.join(self.sites)} -> {self.output_site})",
                "BIDSVersion": "1.9.0",
                "DatasetType": "derivative",
                "GeneratedBy": [{"Name": "mriharmony-harmonize", "Version": __version__}],
                "Checkpoint": str(self.checkpoint),
                "GeneratorSHA256": self.sha,
                "Kind": self.info.kind,
                "Direction": self.direction,
                "InputSites": list(self.sites),
                "UnseenSites": list(self.unseen_sites),
                "OutputSite": self.output_site,
                "NetKwargs": dict(self.info["net_kwargs"]),
            },
        )
        return result


def _plan_sites(info: HarmonizerInfo, checkpoint: str | Path, direction: str, sites: list[str] | None, table_sites):
    """The sites a request harmonizes, checked against what the harmonizer can do."""
    if info.kind == "many_to_one":
        if direction != "to_target":
            raise ValueError(
                f"direction {direction!r}: {checkpoint} is a many-to-one harmonizer; it maps every site to its "
                f"reference site {info['reference_site']!r} (direction to_target) and has no reverse generator"
            )
        reference = info["reference_site"]
        sites = sites or [s for s in sorted(table_sites) if s != reference]
        if reference in sites:
            raise ValueError(
                f"sites {sites}: {reference!r} is the reference site of {checkpoint}; its images are the target "
                f"and are passed through unchanged"
            )
        absent = [s for s in sites if s not in table_sites]
        if absent or not sites:
            raise ValueError(f"sites {sites or []}: no images of {absent} in the table (sites: {sorted(table_sites)})")
        unseen = [s for s in sites if s not in info.seen_sites]
        if unseen:
            log.warning(
                "sites %s were never seen in training (trained on %s): harmonized and flagged unseen_site",
                unseen,
                info["source_sites"],
            )
        return sites
    input_site, output_site = info.input_site(direction), info.output_site(direction)
    sites = sites or [input_site]
    wrong = [s for s in sites if s != input_site]
    if wrong:
        raise ValueError(
            f"sites {wrong}: the {direction} generator of {checkpoint} maps {input_site} -> "
            f"{output_site}; it was not trained on other sites (a many-to-one harmonizer takes every site)"
        )
    if input_site not in table_sites:
        raise ValueError(f"site {input_site!r} has no images in the table (sites: {sorted(table_sites)})")
    return sites


def plan_harmonization(
    table: pd.DataFrame,
    checkpoint: str | Path,
    out: str | Path,
    *,
    direction: str = "to_target",
    sites: list[str] | None = None,
) -> HarmonizationPlan:
    """Check a harmonization request against the harmonizer's run record (see :func:`harmonize_cohort`)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    missing = {"subject", "site", "image_cube", "mask_cube"} - set(table.columns)
    if missing:
        raise ValueError(f"table: missing column(s) {sorted(missing)}; expected the table of `mriharmony preprocess`")
    info = read_harmonizer_info(checkpoint)
    if info.get("domain_key", "site") != "site":
        raise ValueError(
            f"{checkpoint} translates between {info['domain_key']} values ({info['source_site']} <-> "
            f"{info['target_site']}), not sites: it is a synthetic-image generator, not a harmonizer"
        )
    sites = _plan_sites(info, checkpoint, direction, sites, set(table["site"].astype(str)))
    return HarmonizationPlan(
        checkpoint=Path(checkpoint).resolve(),
        out=Path(os.path.abspath(out)),
        direction=direction,
        info=info,
        sites=tuple(sites),
        sha=file_sha256(generator_file(checkpoint, direction)),  # the weights this direction runs
        rows=tuple(r.to_dict() for _, r in table.iterrows()),
    )


def harmonize_cohort(
    table: pd.DataFrame,
    checkpoint: str | Path,
    out: str | Path,
    *,
    direction: str = "to_target",
    sites: list[str] | None = None,
    workers: int | None = 0,
    scheduler: str | None = None,
    device: str = "cpu",
    amp: str | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Harmonize the ``image_cube`` images of ``sites`` (default: the generator's input site).

    Args:
        table: the preprocessed table (``read_preprocessed``): site, image_cube, mask_cube, ...
        checkpoint: a harmonization bundle's ``models/model.pt`` (its run_info.json beside it; for a
            pairwise CycleGAN also model_to_source.pt).
        out: output folder.
        direction: ``to_target`` (G_X: source -> target) or ``to_source`` (G_Y: target -> source; pairwise only).
        sites: sites to run through the generator. Pairwise: only the generator's input site (the default).
            Many-to-one: any sites but the reference (default: all of them); sites never trained on are
            harmonized and flagged ``unseen_site``.
        workers, scheduler: Dask (see :func:`pipeline.parallel.map_rows`); ``workers=0`` runs here.
        amp: None or ``float32`` (the default: the same images on every CPU), ``bfloat16`` or ``float16``
            (autocast), or ``auto`` (bfloat16 on CPUs with native bfloat16, else fp32; see
            :func:`pipeline.engines.autocast.resolve_amp`; the CLI's default). The precision is recorded in
            each sidecar; a re-run in another precision rewrites the images.

    Returns the harmonized table, also written to ``out/harmonized.tsv``.
    """
    from pipeline.engines.autocast import resolve_amp

    amp = resolve_amp(amp, device)
    plan = plan_harmonization(table, checkpoint, out, direction=direction, sites=sites)
    records = map_rows(
        harmonize_image,
        plan.todo,
        str(plan.checkpoint),
        plan.sha,
        str(plan.out),
        direction,
        plan.output_site,
        trained_size=plan.info.get("spatial_size"),
        device=device,
        unseen_sites=plan.unseen_sites,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc="harmonize",
        amp=amp,
    )
    return plan.write_cohort(records)


def read_harmonized(out: str | Path, *, only_ok: bool = True) -> pd.DataFrame:
    """The table written by :func:`harmonize_cohort` (by default only rows that succeeded)."""
    table = pd.read_csv(
        Path(out) / "harmonized.tsv",
        sep="\t",
        dtype={"subject": str, "session": str},
        keep_default_na=False,
        na_values=["n/a"],
    )
    table = resolve_paths(table, out)
    table["session"] = table["session"].fillna("")
    return table[table["status"] == "ok"].reset_index(drop=True) if only_ok else table
