"""The cohort table: its columns, the allowed values and the aliases we accept.

A cohort table has one row per T1w image, keyed by (subject, session):

==========  ========================================================================
column      meaning
==========  ========================================================================
subject     subject label, without the BIDS ``sub-`` prefix
session     session label without ``ses-`` (empty when the cohort has no sessions)
site        acquisition site / scanner (the unit that harmonization removes)
age         age in years at the scan, numeric, within ``AGE_RANGE``
sex         ``M`` or ``F``
diagnosis   ``CN``, ``MCI`` or ``AD``
path        absolute path of the T1w NIfTI image
==========  ========================================================================

Aliases are matched case-insensitively and mapped to the canonical value before validation.
"""

from __future__ import annotations

REQUIRED_COLUMNS: tuple[str, ...] = ("subject", "site", "age", "sex", "diagnosis", "path")
OPTIONAL_COLUMNS: tuple[str, ...] = ("session",)
KEY: tuple[str, str] = ("subject", "session")

DIAGNOSES: tuple[str, ...] = ("CN", "MCI", "AD")
SEXES: tuple[str, ...] = ("M", "F")
AGE_RANGE: tuple[float, float] = (0.0, 120.0)

#: Common spellings of the diagnosis labels found in ADNI, AIBL, OASIS and hospital exports.
DIAGNOSIS_ALIASES: dict[str, str] = {
    "cn": "CN",
    "nc": "CN",
    "hc": "CN",
    "ctl": "CN",
    "control": "CN",
    "controls": "CN",
    "normal": "CN",
    "healthy": "CN",
    "cognitively normal": "CN",
    "mci": "MCI",
    "emci": "MCI",
    "lmci": "MCI",
    "smc": "CN",
    "ad": "AD",
    "dementia": "AD",
    "alzheimer": "AD",
    "alzheimer's disease": "AD",
}

SEX_ALIASES: dict[str, str] = {
    "m": "M",
    "male": "M",
    "man": "M",
    "f": "F",
    "female": "F",
    "woman": "F",
}


def canonical_diagnosis(value: object) -> str | None:
    """Return the canonical diagnosis for ``value``, or None when it is not recognised."""
    return DIAGNOSIS_ALIASES.get(str(value).strip().lower())


def canonical_sex(value: object) -> str | None:
    """Return ``M`` / ``F`` for ``value``, or None when it is not recognised."""
    return SEX_ALIASES.get(str(value).strip().lower())


def strip_prefix(label: object, prefix: str) -> str:
    """``sub-01`` -> ``01`` (BIDS entity labels are stored without their prefix)."""
    text = "" if label is None else str(label).strip()
    return text[len(prefix) :] if text.startswith(prefix) else text
