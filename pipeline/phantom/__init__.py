"""The embedded phantom multisite cohort: realistic synthetic T1w heads with ground truth.

Built on the MNI152 2009a template that nilearn ships in its wheel (no download):

* ``template``  the template's tissue maps, ventricle and hippocampus labels, distance maps;
* ``anatomy``   one subject's anatomy: ageing, AD / MCI atrophy, head size, deformation
  (the generative model and its literature figures are documented there);
* ``scanner``   site effects: contrast, grid and orientation, blur, bias field, Rician noise
  (profiles in configs/phantom_sites.yaml);
* ``generate``  the BIDS dataset + ground-truth derivatives, traveling subjects included.
"""

from __future__ import annotations

from pipeline.phantom.anatomy import Effects, LatentSubject, build_anatomy
from pipeline.phantom.generate import PhantomResult, PhantomSpec, generate_phantom
from pipeline.phantom.scanner import load_site_profiles
from pipeline.phantom.template import LABELS, TEMPLATE_NAME, load_template, template_labels

__all__ = [
    "Effects",
    "LatentSubject",
    "build_anatomy",
    "PhantomResult",
    "PhantomSpec",
    "generate_phantom",
    "load_site_profiles",
    "LABELS",
    "TEMPLATE_NAME",
    "load_template",
    "template_labels",
]
