"""Site (scanner) effects: render a subject's anatomy as a raw T1w image acquired at one site.

Per site, from the profile in ``configs/phantom_sites.yaml`` (site-effect multiplier ``e_site``
scales each site's deviation from the ``reference`` profile; 0 gives every site the reference):

* tissue contrast (CSF, GM, WM, bone, marrow, scalp intensities, WM = 1) and a gamma, with a 2 %
  between-subject jitter per tissue;
* acquisition grid: orientation code (e.g. ``PIR`` for sagittal slabs), voxel size per array axis
  (x the requested resolution), an oblique tilt of the slab, field of view; the head is placed with
  a random rotation and translation (the ground-truth rigid transform);
* blur (Gaussian point-spread function, sigma in voxels per array axis, thicker along slices);
* smooth multiplicative bias field exp(b * f), f a quadratic in scanner coordinates that mixes a
  per-site coil pattern (70 %) with a per-scan part (30 %), normalised to unit SD over the head;
* Rician noise of SD ``noise`` x WM intensity (the magnitude of a complex Gaussian signal), which
  also gives the dark background its noise floor;
* storage: intensity scale and data type (int16, uint16, float32) of the site's DICOM conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import ndimage as ndi

from pipeline.phantom.anatomy import CHANNELS, Anatomy, head_layers
from pipeline.phantom.sampling import sample_volumes
from pipeline.phantom.template import TemplateSpace

__all__ = [
    "ScannerProfile",
    "Demographics",
    "SiteProfile",
    "Rendering",
    "load_site_profiles",
    "render",
    "scaled_profile",
    "mixed_coil_pattern",
    "DEFAULT_PROFILES",
    "AXIS_CODES",
]

DEFAULT_PROFILES = Path(__file__).resolve().parents[2] / "configs" / "phantom_sites.yaml"
TISSUES = ("csf", "gm", "wm", "bone", "marrow", "scalp")
AXIS_CODES = {"R": (0, 1.0), "L": (0, -1.0), "A": (1, 1.0), "P": (1, -1.0), "S": (2, 1.0), "I": (2, -1.0)}
DTYPES = ("int16", "uint16", "float32")


@dataclass(frozen=True)
class ScannerProfile:
    """How a site acquires and stores a T1w image (see the module docstring)."""

    contrast: dict[str, float]
    gamma: float = 1.0
    bias: float = 0.2
    noise: float = 0.03
    voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0)
    blur: tuple[float, float, float] = (0.5, 0.5, 0.5)
    orientation: str = "RAS"
    oblique_deg: float = 0.0
    fov_mm: tuple[float, float, float] = (200.0, 240.0, 220.0)
    head_rotation_deg: float = 6.0
    head_translation_mm: float = 6.0
    intensity_scale: float = 1000.0
    dtype: str = "int16"


@dataclass(frozen=True)
class Demographics:
    """Who is scanned at a site: age (truncated normal), sex and diagnosis proportions."""

    age_mean: float
    age_sd: float
    age_min: float
    age_max: float
    female: float = 0.5
    diagnosis: dict[str, float] = field(default_factory=lambda: {"CN": 1.0})


@dataclass(frozen=True)
class SiteProfile:
    name: str
    scanner: ScannerProfile
    demographics: Demographics
    description: str = ""
    protocol: dict[str, Any] = field(default_factory=dict)  # the real acquisition it imitates, with its source


def _check_keys(data: dict, allowed: set[str], where: str, source: str) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"{source}: {where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _scanner(data: dict, where: str, source: str, base: ScannerProfile | None = None) -> ScannerProfile:
    allowed = {f.name for f in fields(ScannerProfile)}
    _check_keys(data, allowed, where, source)
    values: dict[str, Any] = dict(data)
    for key in ("voxel_size", "blur", "fov_mm"):
        if key in values:
            v = values[key]
            if not (
                isinstance(v, (list, tuple)) and len(v) == 3 and all(isinstance(x, (int, float)) and x > 0 for x in v)
            ):
                raise ValueError(f"{source}: {where}.{key}: expected 3 positive numbers, got {v!r}")
            values[key] = tuple(float(x) for x in v)
    if "orientation" in values:
        code = str(values["orientation"]).upper()
        if len(code) != 3 or sorted(AXIS_CODES[c][0] for c in code if c in AXIS_CODES) != [0, 1, 2]:
            raise ValueError(
                f"{source}: {where}.orientation: expected a 3-letter code with one of R/L, A/P, S/I "
                f"each (e.g. RAS, LPS, PIR), got {values['orientation']!r}"
            )
        values["orientation"] = code
    if "dtype" in values and values["dtype"] not in DTYPES:
        raise ValueError(f"{source}: {where}.dtype: expected one of {DTYPES}, got {values['dtype']!r}")
    if "contrast" in values:
        contrast = values["contrast"]
        if not isinstance(contrast, dict):
            raise ValueError(f"{source}: {where}.contrast: expected a mapping of {TISSUES} to intensities")
        _check_keys(contrast, set(TISSUES), f"{where}.contrast", source)
        merged = dict(base.contrast) if base else {}
        merged.update({k: float(v) for k, v in contrast.items()})
        missing = set(TISSUES) - set(merged)
        if missing:
            raise ValueError(f"{source}: {where}.contrast: missing {sorted(missing)}")
        values["contrast"] = merged
    if base is not None:
        return replace(base, **values)
    if "contrast" not in values:
        raise ValueError(f"{source}: {where}.contrast: required")
    return ScannerProfile(**values)


def load_site_profiles(path: str | Path | None = None) -> tuple[ScannerProfile, dict[str, SiteProfile]]:
    """Read site profiles: ``reference`` (a scanner profile) and ``sites`` (name -> profile).

    Each site's scanner entries override the reference's. Unknown keys and bad values fail
    here, naming the file, the key and what was expected.
    """
    path = Path(path) if path is not None else DEFAULT_PROFILES
    if not path.exists():
        raise FileNotFoundError(f"site profiles {path} not found (the default lives in configs/phantom_sites.yaml)")
    data = yaml.safe_load(path.read_text()) or {}
    source = str(path)
    _check_keys(data, {"reference", "sites"}, "top level", source)
    if "reference" not in data or "sites" not in data:
        raise ValueError(f"{source}: expected top-level keys 'reference' and 'sites'")
    reference = _scanner(data["reference"], "reference", source)
    sites: dict[str, SiteProfile] = {}
    for name, entry in (data["sites"] or {}).items():
        if not str(name).isalnum():
            raise ValueError(f"{source}: sites.{name}: site names must be alphanumeric (they become BIDS labels)")
        _check_keys(entry, {"description", "protocol", "scanner", "demographics"}, f"sites.{name}", source)
        demo = entry.get("demographics") or {}
        _check_keys(demo, {f.name for f in fields(Demographics)}, f"sites.{name}.demographics", source)
        missing = {"age_mean", "age_sd", "age_min", "age_max"} - set(demo)
        if missing:
            raise ValueError(f"{source}: sites.{name}.demographics: missing key(s) {sorted(missing)}")
        demographics = Demographics(**demo)
        dx = demographics.diagnosis
        if set(dx) - {"CN", "MCI", "AD"} or abs(sum(dx.values()) - 1.0) > 1e-6:
            raise ValueError(
                f"{source}: sites.{name}.demographics.diagnosis: expected proportions of CN/MCI/AD "
                f"summing to 1, got {dx}"
            )
        if not demographics.age_min < demographics.age_max:
            raise ValueError(f"{source}: sites.{name}.demographics: age_min must be below age_max")
        scanner = _scanner(entry.get("scanner") or {}, f"sites.{name}.scanner", source, base=reference)
        sites[str(name)] = SiteProfile(
            str(name), scanner, demographics, str(entry.get("description", "")), dict(entry.get("protocol") or {})
        )
    return reference, sites


def scaled_profile(profile: ScannerProfile, reference: ScannerProfile, site_effect: float) -> ScannerProfile:
    """Scale the site's deviation from the reference by ``site_effect``: 1 = the site as profiled, 0 = the
    reference scanner, above 1 = exaggerated.

    Intensity (contrast, gamma, bias, noise, blur) and geometry (voxel size, oblique tilt, field of view)
    are interpolated; the discrete keys (orientation, storage type and scale) are the site's unless the
    effect is 0, when every key is the reference's, so nothing but the subject's own anatomy, pose and noise
    differs between sites. (The coil pattern is mixed the same way, in :func:`mixed_coil_pattern`.)
    """

    def mix(a: float, b: float) -> float:
        return float(a) if site_effect == 1 else float(b + site_effect * (a - b))  # exact at 1

    def mix3(a: tuple, b: tuple, floor: float) -> tuple[float, float, float]:
        return tuple(max(floor, mix(x, y)) for x, y in zip(a, b))  # type: ignore[return-value]

    discrete = reference if site_effect == 0 else profile
    return replace(
        profile,
        contrast={k: mix(profile.contrast[k], reference.contrast[k]) for k in TISSUES},
        gamma=mix(profile.gamma, reference.gamma),
        bias=max(0.0, mix(profile.bias, reference.bias)),
        noise=max(0.0, mix(profile.noise, reference.noise)),
        blur=mix3(profile.blur, reference.blur, 0.0),
        voxel_size=mix3(profile.voxel_size, reference.voxel_size, 0.25),
        oblique_deg=mix(profile.oblique_deg, reference.oblique_deg),
        fov_mm=mix3(profile.fov_mm, reference.fov_mm, 50.0),
        orientation=discrete.orientation,
        intensity_scale=discrete.intensity_scale,
        dtype=discrete.dtype,
    )


def mixed_coil_pattern(site_pattern: np.ndarray, reference_pattern: np.ndarray, site_effect: float) -> np.ndarray:
    """The site's receive-coil pattern moved toward the reference scanner's by ``site_effect`` (as
    :func:`scaled_profile`): the site's own at 1, the reference's at 0."""
    if site_effect == 1:
        return site_pattern
    return reference_pattern + site_effect * (site_pattern - reference_pattern)


@dataclass
class Rendering:
    """A raw image at one site plus its ground truth, all on the same native grid."""

    image: np.ndarray
    affine: np.ndarray
    brain_mask: np.ndarray
    dseg: np.ndarray
    bias_field: np.ndarray
    template_to_scanner: np.ndarray  # 4x4 RAS: template point -> scanner point (the head pose)
    params: dict[str, float]


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return z @ y @ x


def _native_grid(
    profile: ScannerProfile, resolution: float, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[int, ...]]:
    directions = np.zeros((3, 3))
    spacing = np.array(profile.voxel_size) * resolution
    shape = []
    for axis, code in enumerate(profile.orientation):
        world, sign = AXIS_CODES[code]
        directions[world, axis] = sign
        shape.append(int(np.ceil(profile.fov_mm[world] / spacing[axis])))
    tilt = np.deg2rad(profile.oblique_deg)
    linear = _rotation(tilt, 0.0, 0.0) @ directions @ np.diag(spacing)
    centre = rng.normal(0.0, 3.0, size=3)
    origin = centre - linear @ ((np.array(shape) - 1) / 2.0)
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = linear, origin
    return affine, tuple(shape)


def _bias_basis(points: np.ndarray) -> np.ndarray:
    x, y, z = points / 100.0
    return np.stack([x, y, z, x * x, y * y, z * z, x * y, x * z, y * z])


def render(
    anatomy: Anatomy,
    template: TemplateSpace,
    profile: ScannerProfile,
    *,
    resolution: float,
    rng: np.random.Generator,
    coil_pattern: np.ndarray,
) -> Rendering:
    """Acquire ``anatomy`` with ``profile``: pose, grid, contrast, blur, bias field, Rician noise.

    Args:
        anatomy: the subject's anatomy (template space).
        template: the template space the anatomy lives in.
        profile: the site's scanner profile (already scaled by the site-effect multiplier).
        resolution: base voxel size in mm; the profile's voxel sizes multiply it.
        rng: the random stream of this (subject, site) rendering.
        coil_pattern: the site's 9 bias-field coefficients (shared by all its scans).
    """
    affine, shape = _native_grid(profile, resolution, rng)
    rot = np.deg2rad(profile.head_rotation_deg)
    pose = _rotation(rng.uniform(-rot, rot), rng.uniform(-rot / 2, rot / 2), rng.uniform(-rot / 2, rot / 2))
    shift = rng.normal(0.0, profile.head_translation_mm, size=3)
    template_to_scanner = np.eye(4)
    template_to_scanner[:3, :3] = pose
    template_to_scanner[:3, 3] = shift - pose @ template.centre

    # native voxel -> scanner point -> template point -> template voxel
    native_to_template_vox = np.linalg.inv(template.affine) @ np.linalg.inv(template_to_scanner) @ affine
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    m = native_to_template_vox.astype(np.float32)
    tpl_vox = (m[:3, :3] @ ijk + m[:3, 3:]).reshape((3,) + shape)
    occ = sample_volumes(anatomy.maps, tpl_vox)
    ch = {name: occ[i] for i, name in enumerate(CHANNELS)}
    ch.update(head_layers(occ, anatomy.params["layer_scale"], 0.25 * template.resolution))

    contrast = {k: v * float(np.exp(rng.normal(0.0, 0.02))) for k, v in profile.contrast.items()}
    clean = (
        contrast["csf"] * (ch["csf"] + ch["csf_ext"])
        + contrast["gm"] * ch["gm"]
        + contrast["wm"] * ch["wm"]
        + contrast["bone"] * ch["bone"]
        + contrast["marrow"] * ch["marrow"]
        + contrast["scalp"] * ch["scalp"]
    )
    clean = np.power(np.maximum(clean, 0.0), profile.gamma).astype(np.float32)
    if any(b > 0 for b in profile.blur):
        clean = ndi.gaussian_filter(clean, sigma=profile.blur, truncate=3.0)

    brain = ch["csf"] + ch["gm"] + ch["wm"]
    head = brain + ch["csf_ext"] + ch["bone"] + ch["marrow"] + ch["scalp"]
    points = affine[:3, :3].astype(np.float32) @ ijk + affine[:3, 3:].astype(np.float32)
    basis = _bias_basis(points)
    coefficients = 0.7 * coil_pattern + 0.3 * rng.normal(0.0, 1.0, size=9)
    f = np.tensordot(coefficients.astype(np.float32), basis, axes=1).reshape(shape)
    inside = head > 0.5
    f = (f - f[inside].mean()) / max(float(f[inside].std()), 1e-6)
    bias_field = np.exp(profile.bias * f).astype(np.float32)
    bias_field /= float(bias_field[brain > 0.5].mean())

    sigma = profile.noise * contrast["wm"] ** profile.gamma
    signal = clean * bias_field
    noisy = np.sqrt((signal + rng.normal(0.0, sigma, size=shape)) ** 2 + rng.normal(0.0, sigma, size=shape) ** 2)
    scaled = noisy * profile.intensity_scale
    if profile.dtype == "float32":
        image = scaled.astype(np.float32)
    else:
        info = np.iinfo(profile.dtype)
        image = np.clip(np.rint(scaled), info.min, info.max).astype(profile.dtype)

    background = 1.0 - np.clip(head, 0.0, 1.0)
    classes = np.stack(
        [background, ch["csf"] + ch["csf_ext"], ch["gm"], ch["wm"], ch["bone"] + ch["marrow"], ch["scalp"]]
    )
    dseg = np.array([0, 1, 2, 3, 6, 7], np.uint8)[np.argmax(classes, axis=0)]
    dseg[ch["ventricles"] > 0.5] = 4
    dseg[ch["hippocampus"] > 0.5] = 5

    params = {
        "pose_rotation_deg": float(np.rad2deg(np.arccos(np.clip((np.trace(pose) - 1) / 2, -1, 1)))),
        "pose_translation_mm": float(np.linalg.norm(shift)),
        "noise_sd": float(sigma),
        "bias_sd_log": float(np.log(bias_field[brain > 0.5]).std()),
        **{f"contrast_{k}": float(v) for k, v in contrast.items()},
    }
    return Rendering(
        image=image,
        affine=affine,
        brain_mask=(brain > 0.5).astype(np.uint8),
        dseg=dseg,
        bias_field=bias_field,
        template_to_scanner=template_to_scanner,
        params=params,
    )
