"""One phantom subject's anatomy in template space: ageing, disease, individual variation.

The generative model (per latent subject; ``a = max(age - 30, 0)``, the template being a young
adult average; ``e_age`` and ``e_ad`` are the effect-size multipliers, 1 = realistic):

=====================  =================================================================  ===========
quantity               model                                                              literature
=====================  =================================================================  ===========
lateral ventricles     x exp(0.0173 e_age a) (doubles every 40 y); AD x (1 + 0.35 e_ad r),  [1, 2]
                       MCI x (1 + 0.15 e_ad r), r = clip((age - 50) / 25, 0, 1.5) (faster
                       growth in AD); individual x lognormal(sd 0.33)
hippocampus            x (1 - e_age (0.002 a + 0.00004 a^2)) (about -14 % at 70, -26 % at  [3, 4]
                       90); AD x (1 - 0.22 e_ad), MCI x (1 - 0.11 e_ad); individual x
                       lognormal(sd 0.10)
cortical GM            x (1 - 0.0025 e_age a); AD -3 %, MCI -1.5 % (x e_ad); individual    [5]
                       sd 3 %; lost GM becomes sulcal CSF at the pial side
head size              linear scale exp(N(0, 0.035)) x 1.018 (M) or 0.982 (F) (x e_sex):  [6]
                       intracranial volume sd ~10 %, men ~11 % larger
deformation            smooth random displacement, sd 2.0 mm per axis, correlation ~25 mm
skull and scalp        layers outside the brain mask: CSF 0-1.5, bone 1.5-3, marrow 3-5,
                       bone 5-6.5, scalp 6.5-12 mm, thickness x N(1, 0.12) per subject
=====================  =================================================================  ===========

Ventricle growth is a dilation of the template ventricles (periventricular tissue becomes CSF),
hippocampal atrophy an erosion (lost tissue becomes CSF, as the temporal horn widens), cortical
thinning an erosion of GM from its CSF side; each is driven by a threshold on a distance map,
chosen by table look-up so that the requested volume is met exactly before deformation.
Individual variation makes ventricle size vary with an SD of about 35 % of its mean at a given
age, as in real cohorts, so that age and diagnosis are learnable but not trivial.

[1] Fjell et al. 2009, Cereb Cortex (ventricles about +2 %/y after 60; x2 between 50 and 90).
[2] Nestor et al. 2008, Brain (ventricular enlargement faster in AD and MCI).
[3] Fraser et al. 2015, NeuroImage meta-analysis (hippocampal loss ~0.4 %/y rising to >1 %/y).
[4] Schuff et al. 2009, Brain; Jack et al. 1997 (AD hippocampi ~20-25 % smaller than controls).
[5] Storsve et al. 2014, J Neurosci (cortical volume -0.3 to -0.5 %/y).
[6] Ruigrok et al. 2014, Neurosci Biobehav Rev (intracranial volume, men ~12 % larger).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.phantom.sampling import sample_volumes
from pipeline.phantom.template import TemplateSpace

__all__ = ["Effects", "LatentSubject", "Anatomy", "CHANNELS", "build_anatomy"]

#: Channels of :attr:`Anatomy.maps`: occupancies in [0, 1] (ventricles are part of csf, hippocampus
#: part of gm) and ``head``, the proximity to the brain ``max(0, HEAD_RANGE - distance outside the
#: brain in mm)``, from which :func:`head_layers` draws skull and scalp after sampling (one channel
#: instead of four, and 0 far from the head, as sampling outside the grid reads).
CHANNELS: tuple[str, ...] = ("csf", "gm", "wm", "ventricles", "hippocampus", "head")
HEAD_RANGE = 20.0
LAYERS = (("csf_ext", 0.0, 1.5), ("bone", 1.5, 3.0), ("marrow", 3.0, 5.0), ("bone", 5.0, 6.5), ("scalp", 6.5, 12.0))
_VENTRICLE_DX = {"CN": 0.0, "MCI": 0.15, "AD": 0.35}
_HIPPOCAMPUS_DX = {"CN": 0.0, "MCI": 0.11, "AD": 0.22}
_CORTEX_DX = {"CN": 0.0, "MCI": 0.015, "AD": 0.03}


@dataclass(frozen=True)
class Effects:
    """Effect-size multipliers: 1 = realistic; larger for tests that need strong effects, 0 = none."""

    age: float = 1.0
    ad: float = 1.0
    site: float = 1.0
    sex: float = 1.0
    individual: float = 1.0  # scales the between-subject variability (ventricles, hippocampus, GM)


@dataclass(frozen=True)
class LatentSubject:
    """A subject's latent identity: the same latent subject has the same anatomy at every site."""

    latent_id: str
    age: float
    sex: str
    diagnosis: str
    anatomy_seed: tuple[int, ...]


@dataclass
class Anatomy:
    """A subject's anatomy on the template's padded grid.

    Attributes:
        maps: (len(CHANNELS), X, Y, Z) float32 occupancies.
        volumes: ml of brain, gm, wm, csf, ventricles and hippocampus (after head-size scaling).
        params: the latent parameters drawn (factors, head scale, deformation size).
    """

    maps: np.ndarray
    volumes: dict[str, float]
    params: dict[str, float] = field(default_factory=dict)

    def channel(self, name: str) -> np.ndarray:
        return self.maps[CHANNELS.index(name)]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))).astype(np.float32)


def _threshold_for_volume(
    distance: np.ndarray, weight: np.ndarray, target: float, width: float, t_range: tuple[float, float]
) -> float:
    """Threshold t such that sum(weight * sigmoid((t - distance) / width)) ~= target (in voxels)."""
    ts = np.linspace(t_range[0], t_range[1], 61, dtype=np.float32)
    sel = weight > 0
    d, w = distance[sel], weight[sel]
    near = d < t_range[1] + 6 * width
    d, w = d[near], w[near]
    volumes = np.array([float((w * _sigmoid((t - d) / width)).sum()) for t in ts])
    volumes = np.maximum.accumulate(volumes)  # monotone for interpolation
    return float(np.interp(target, volumes, ts))


def _smooth_displacement(
    shape: tuple[int, ...], resolution: float, rng: np.random.Generator, sd_mm: float, spacing_mm: float = 25.0
) -> np.ndarray:
    """Smooth random displacement field (3, X, Y, Z) in mm: coarse Gaussian noise, trilinear upsampling."""
    coarse_shape = [max(2, int(np.ceil(s * resolution / spacing_mm)) + 1) for s in shape]
    coarse = rng.normal(0.0, sd_mm, size=(1, 3, *coarse_shape)).astype(np.float32)
    field = F.interpolate(torch.from_numpy(coarse), size=shape, mode="trilinear", align_corners=True)
    return field[0].numpy()


def head_layers(maps: np.ndarray, layer_scale: float, width: float) -> dict[str, np.ndarray]:
    """Skull and scalp occupancies (csf_ext, bone, marrow, scalp) from sampled anatomy channels.

    Args:
        maps: channels of :data:`CHANNELS` (any grid).
        layer_scale: the subject's layer-thickness factor.
        width: width of the soft layer boundaries (mm).
    """
    brain = maps[0] + maps[1] + maps[2]
    d_out = HEAD_RANGE - maps[CHANNELS.index("head")]
    outside = np.clip(1.0 - brain, 0.0, 1.0)
    layers = {name: np.zeros_like(brain) for name in ("csf_ext", "bone", "marrow", "scalp")}
    for name, r0, r1 in LAYERS:
        inner = _sigmoid((r0 * layer_scale - d_out) / width) if r0 > 0 else 0.0
        layers[name] += outside * np.clip(_sigmoid((r1 * layer_scale - d_out) / width) - inner, 0.0, 1.0)
    return layers


def build_anatomy(template: TemplateSpace, subject: LatentSubject, effects: Effects = Effects()) -> Anatomy:
    """Draw the subject's anatomy: atrophy on the template maps, skull and scalp, head size, deformation."""
    rng = np.random.default_rng(list(subject.anatomy_seed))
    a = max(subject.age - 30.0, 0.0)
    dx = subject.diagnosis
    ind = effects.individual
    ramp = float(np.clip((subject.age - 50.0) / 25.0, 0.0, 1.5))
    ventricle_factor = (
        np.exp(0.0173 * effects.age * a)
        * (1.0 + effects.ad * _VENTRICLE_DX[dx] * ramp)
        * np.exp(rng.normal(0.0, 0.33 * ind))
    )
    hippocampus_factor = (
        (1.0 - effects.age * (0.002 * a + 0.00004 * a * a))
        * (1.0 - effects.ad * _HIPPOCAMPUS_DX[dx])
        * np.exp(rng.normal(0.0, 0.10 * ind))
    )
    cortex_factor = 1.0 - effects.age * 0.0025 * a - effects.ad * _CORTEX_DX[dx] + rng.normal(0.0, 0.03 * ind)
    head_scale = float(np.exp(rng.normal(0.0, 0.035 * ind)) * (1.018 if subject.sex == "M" else 0.982) ** effects.sex)
    layer_scale = float(np.clip(rng.normal(1.0, 0.12), 0.7, 1.3))

    t = template
    w = 0.25 * t.resolution  # width of soft boundaries (mm)
    brain, gm, wm, csf = t.brain, t.gm.copy(), t.wm.copy(), t.csf.copy()

    # ventricles: dilate (or erode) the template ventricles inside deep tissue
    v0 = _sigmoid(-t.d_ventricles / w) * brain
    region = ((t.depth > 4.0) & (t.d_hippocampus > 2.0)).astype(np.float32)
    grow_weight = np.maximum(region, v0)
    target = ventricle_factor * float(v0.sum())
    t_v = _threshold_for_volume(t.d_ventricles, grow_weight * brain, target, w, (-6.0, 14.0))
    v1 = np.minimum(_sigmoid((t_v - t.d_ventricles) / w) * grow_weight, brain)
    # the tissue outside the ventricles, as the sum of its parts (the template's CSF can be below v0 at the
    # soft ventricle boundary, so brain - v0 would undercount it)
    csf_nonvent = np.maximum(csf - v0, 0.0)
    rest0 = csf_nonvent + gm + wm
    rest1 = np.maximum(brain - v1, 0.0)
    # where the ventricles grow, the other tissues shrink in proportion; where they shrink (rest1 > rest0),
    # the other tissues stay and the freed space becomes WM (scaling them up would exceed occupancy 1 at
    # the soft ventricle boundary and render it brighter than WM)
    factor = np.where(rest0 > 1e-4, np.minimum(rest1 / np.maximum(rest0, 1e-4), 1.0), 0.0).astype(np.float32)
    csf_nonvent = csf_nonvent * factor
    gm, wm = gm * factor, wm * factor
    wm += np.maximum(rest1 - rest0 * factor, 0.0).astype(np.float32)  # shrunk ventricle becomes WM
    csf = csf_nonvent + v1
    ventricles = v1

    # hippocampus: erode (atrophy) or grow slightly; lost tissue becomes CSF
    h0 = gm * _sigmoid(-t.d_hippocampus / w)
    t_h = _threshold_for_volume(t.d_hippocampus, gm, hippocampus_factor * float(h0.sum()), w, (-6.0, 1.0))
    h1 = gm * _sigmoid((t_h - t.d_hippocampus) / w)
    lost = np.maximum(h0 - h1, 0.0)
    gm, csf = gm - lost, csf + lost
    hippocampus = h1

    # cortical thinning: GM lost on its CSF side, outside deep structures
    cortex = ((t.depth < 20.0) & (t.d_hippocampus > 4.0) & (t.d_ventricles > 4.0)).astype(np.float32)
    loss_target = max(0.0, (1.0 - cortex_factor) * float(t.gm.sum()))
    if loss_target > 0:
        t_c = _threshold_for_volume(t.d_csf, gm * cortex, loss_target, w, (-4.0, 8.0))
        lost = gm * cortex * _sigmoid((t_c - t.d_csf) / w)
        gm, csf = gm - lost, csf + lost

    head = np.maximum(HEAD_RANGE - t.d_out, 0.0).astype(np.float32)
    maps = np.stack([csf, gm, wm, ventricles, hippocampus, head]).astype(np.float32)

    # head size and smooth deformation: subject(q) = atrophied template(c + (q - c) / s + u(q))
    displacement = _smooth_displacement(t.shape, t.resolution, rng, sd_mm=2.0 * ind)
    xyz = t.world_coordinates()
    c = t.centre.astype(np.float32)[:, None, None, None]
    source = c + (xyz - c) / head_scale + displacement
    inv = np.linalg.inv(t.affine).astype(np.float32)
    source_vox = np.einsum("ij,j...->i...", inv[:3, :3], source) + inv[:3, 3][:, None, None, None]
    warped = sample_volumes(maps, source_vox)

    ml = t.voxel_ml
    volumes = {
        "brain_ml": float(warped[0:3].sum() * ml),
        "gm_ml": float(warped[1].sum() * ml),
        "wm_ml": float(warped[2].sum() * ml),
        "csf_ml": float(warped[0].sum() * ml),
        "ventricles_ml": float(warped[3].sum() * ml),
        "hippocampus_ml": float(warped[4].sum() * ml),
    }
    params = {
        "ventricle_factor": float(ventricle_factor),
        "hippocampus_factor": float(hippocampus_factor),
        "cortex_factor": float(cortex_factor),
        "head_scale": head_scale,
        "layer_scale": layer_scale,
    }
    return Anatomy(maps=warped, volumes=volumes, params=params)
