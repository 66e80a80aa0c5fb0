"""Headline findings: the report's first lines, written from the numbers with their intervals and n.

Each finding answers one of the questions users bring (how much site signal is left, how close a
traveling subject comes to its reference scan, how much of the cross-site brain-age penalty is removed,
is the biology kept, do the models beat their floors), names every method beside the identity, and says
plainly when a method does not beat it. A method "beats" the identity only when the 95% interval of its
paired difference to the identity (same subjects, same resamples) excludes zero; otherwise it "does not
beat identity". A finding with too few subjects to mean anything says "underpowered" and why, instead of
reading like a result.

The findings read the tables :mod:`pipeline.report.collect` copied from the run's files; nothing is
recomputed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

__all__ = ["Finding", "headline_findings", "MIN_TEST_SUBJECTS", "MIN_TRAVELING_SUBJECTS"]

#: Fewer test subjects than this and a probe or a brain-age error cannot tell methods apart (the benchmark's
#: own threshold, pipeline.experiments.brain_age_benchmark.UNDERPOWERED_N).
MIN_TEST_SUBJECTS = 20
#: Fewer traveling (paired) subjects than this and a fidelity difference is anecdote.
MIN_TRAVELING_SUBJECTS = 10


@dataclass(frozen=True)
class Finding:
    """One headline: ``topic``, what was measured (``title``), the numbers (``body``), the number of subjects
    behind it and, when too few, why (``underpowered``)."""

    topic: str
    title: str
    body: str
    n: int
    underpowered: str = ""

    @property
    def text(self) -> str:
        """The sentence; an underpowered finding shows no numbers, so that it cannot be read as a result."""
        if self.underpowered:
            return (
                f"{self.title}: underpowered ({self.underpowered}); its numbers stay in the section below, "
                "not a finding."
            )
        return f"{self.title}: {self.body}"

    @property
    def line(self) -> str:
        return self.text


def _f(value: Any, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _interval(low: Any, high: Any, digits: int = 2) -> str:
    return f"[{_f(low, digits)}, {_f(high, digits)}]"


STUDY_POINTER = "see the study run (mriharmony demo --scale study)"


def _power(n: int, minimum: int, what: str) -> str:
    return f"n = {n} {what} < {minimum}; {STUDY_POINTER}" if n < minimum else ""


def _benchmark_power(record: dict, n: int) -> str:
    """The benchmark's own reasons (too few test subjects or runs), else the n threshold."""
    reason = record.get("underpowered")
    return f"{reason}; {STUDY_POINTER}" if reason else _power(n, MIN_TEST_SUBJECTS, "test subjects")


def _verdict(difference: Any, low: Any, high: Any, *, lower_is_better: bool, digits: int = 2) -> str:
    """'beats identity by ...' when the paired interval excludes 0 in the good direction, 'worse than
    identity' in the bad one, else 'does not beat identity'."""
    if difference is None or low is None or high is None:
        return "no paired difference"
    sign = f"{difference:+.{digits}f} {_interval(low, high, digits)}"
    better = high < 0 if lower_is_better else low > 0
    worse = low > 0 if lower_is_better else high < 0
    if better:
        return f"beats identity ({sign})"
    if worse:
        return f"worse than identity ({sign})"
    return f"does not beat identity ({sign})"


ADJUSTMENT_WORDS = {
    "none": "",
    "residualized": ", residualized for age, sex and diagnosis",
    "traveling": ", traveling subjects only",
}
PROBE_WORDS = {"linear": "linear on 8^3 volumes", "cnn": "3D CNN on 16^3 volumes", "features": "regional mean T1"}
INPUT_WORDS = {"linear": "8^3 volumes", "features": "regional mean T1"}


def _site_probe_findings(records: list[dict]) -> Iterable[Finding]:
    for probe, adjustment in dict.fromkeys((r["probe"], r.get("adjustment", "none")) for r in records):
        part = [r for r in records if r["probe"] == probe and r.get("adjustment", "none") == adjustment]
        identity = next((r for r in part if r["condition"] == "identity"), None)
        if identity is None or (probe == "cnn" and adjustment != "none"):
            continue
        others = [
            f"{r['condition']} {_f(r['balanced_accuracy'])} {_interval(r['low'], r['high'])}, "
            + _verdict(
                r.get("difference_to_identity"), r.get("difference_low"), r.get("difference_high"), lower_is_better=True
            )
            for r in part
            if r is not identity
        ]
        n = int(identity["n_subjects"])
        yield Finding(
            "site probe",
            f"Site probe ({PROBE_WORDS.get(probe, probe)}{ADJUSTMENT_WORDS.get(adjustment, adjustment)}; "
            f"chance {_f(identity['chance'])}; n = {n} subjects)",
            f"identity {_f(identity['balanced_accuracy'])} {_interval(identity['low'], identity['high'])}; "
            + "; ".join(others)
            + ".",
            n,
            _power(n, MIN_TEST_SUBJECTS, "subjects"),
        )


def _traveling_findings(records: list[dict]) -> Iterable[Finding]:
    mae = [r for r in records if r["metric"] == "mae"]
    identity = next((r for r in mae if r["condition"] == "identity"), None)
    if identity is None:
        return
    n = int(identity["n_subjects"])
    others = []
    for r in mae:
        if r is identity:
            continue
        text = f"{r['condition']} {_f(r['mean'], 4)} {_interval(r['low'], r['high'], 4)}"
        if r["condition"] == "oracle":
            text += " (per-pair oracle: matched to the subject's own reference image, a bound)"
        else:
            text += ", " + _verdict(
                r["difference_to_identity"], r["difference_low"], r["difference_high"], lower_is_better=True, digits=4
            )
        others.append(text)
    yield Finding(
        "traveling subjects",
        f"Traveling subjects, in-brain MAE to their own reference-site image (n = {n})",
        f"identity {_f(identity['mean'], 4)} {_interval(identity['low'], identity['high'], 4)}; "
        + "; ".join(others)
        + ".",
        n,
        _power(n, MIN_TRAVELING_SUBJECTS, "traveling subjects"),
    )


def _biology_findings(records: list[dict]) -> Iterable[Finding]:
    for source, task in dict.fromkeys((r["input"], r["task"]) for r in records):
        part = [r for r in records if (r["input"], r["task"]) == (source, task)]
        identity = next((r for r in part if r["condition"] == "identity"), None)
        if identity is None:
            continue
        lower_is_better = task == "age"
        what = "age regressor MAE (years)" if task == "age" else "CN-vs-AD balanced accuracy"
        floor = f"; floor {_f(identity['floor'])}" + (" (training mean)" if task == "age" else " (chance)")
        others = []
        for r in part:
            if r is identity:
                continue
            verdict = _verdict(
                r["difference_to_identity"], r["difference_low"], r["difference_high"], lower_is_better=lower_is_better
            )
            kept = (
                "loses biology"
                if verdict.startswith("worse")
                else "keeps it"
                if not verdict.startswith("beats")
                else "stronger than raw"
            )
            others.append(f"{r['condition']} {_f(r['estimate'])} ({kept}: {verdict.split(' (', 1)[1].rstrip(')')})")
        n = int(identity["n_subjects"])
        yield Finding(
            "biology kept",
            f"Biology kept? {what} on {INPUT_WORDS.get(source, source)} (n = {n}{floor})",
            f"identity {_f(identity['estimate'])} {_interval(identity['low'], identity['high'])}; "
            + "; ".join(others)
            + ".",
            n,
            _power(n, MIN_TEST_SUBJECTS, "subjects"),
        )


def _penalty_findings(records: list[dict]) -> Iterable[Finding]:
    for route in dict.fromkeys((r["train_site"], r["test_site"]) for r in records if r["train_site"] != r["test_site"]):
        part = [r for r in records if (r["train_site"], r["test_site"]) == route]
        raw = next((r for r in part if r["condition"] == "raw"), None)
        if raw is None or raw.get("penalty") is None:
            continue
        others = [
            f"{r['condition']} {_f(r['penalty'])} {_interval(r['penalty_low'], r['penalty_high'])}, "
            + _verdict(r["diff_mae"], r["diff_low"], r["diff_high"], lower_is_better=True).replace(
                "identity", r["compared_with"]
            )
            for r in part
            if r is not raw and r["condition"] != "features_raw"
        ]
        n = int(raw["n_test"])
        reason = _benchmark_power(raw, n)
        yield Finding(
            "cross-site brain age",
            f"Cross-site brain-age penalty, trained on {route[0]}, tested on {route[1]} "
            f"(MAE minus the same model's within-site MAE, years; {raw['runs']} runs, n = {n})",
            f"raw {_f(raw['penalty'])} {_interval(raw['penalty_low'], raw['penalty_high'])}; remaining after "
            + "; ".join(others)
            + ".",
            n,
            reason,
        )


CONDITION_WORDS = {
    "raw": "CNN",
    "cnn": "CNN",
    "to_source": "CNN on images harmonized to the reference",
    "to_target": "CNN on images harmonized to the target",
    "features_raw": "ridge on regional mean T1",
    "features_combat": "ridge on regional mean T1 after ComBat",
    "tissue_linear": "linear regression on tissue fractions",
}


def _mean_predictor_findings(records: list[dict], protocol: str) -> Iterable[Finding]:
    """Does any brain-age model beat the training-mean predictor? Paired: same subjects, same resamples."""
    if not records or "vs_mean" not in records[0]:
        return
    n = int(min(r["n_test"] for r in records))
    parts = []
    for r in records:
        if r["condition"] == "train_mean" or r.get("vs_mean_low") is None or r.get("vs_mean_high") is None:
            continue
        verdict = (
            "beats the mean predictor"
            if r["vs_mean_high"] < 0
            else "worse than the mean predictor"
            if r["vs_mean_low"] > 0
            else "does not beat the mean predictor"
        )
        parts.append(
            f"{CONDITION_WORDS.get(r['condition'], r['condition'])} {_f(r['mae_mean'])} "
            f"({verdict}: {r['vs_mean']:+.2f} {_interval(r['vs_mean_low'], r['vs_mean_high'])})"
        )
    if not parts:
        return
    runs = records[0]["runs"]
    reason = _benchmark_power(records[0], n)
    yield Finding(
        "brain age",
        f"Brain-age MAE against the training-mean predictor ({protocol}; years; {runs} "
        f"run{'s' if runs != 1 else ''}, n = {n}; mean predictor {_f(records[0]['mean_predictor_mae'])})",
        "; ".join(parts) + "." + _subjects_needed(records, n),
        n,
        reason,
    )


def _subjects_needed(records: list[dict], n: int) -> str:
    """When no model beats the mean predictor but one is ahead of it: about how many test subjects would make
    that model's paired interval exclude 0, if the difference stayed the same (the interval narrows as 1/sqrt(n))."""
    scored = [
        r
        for r in records
        if r["condition"] != "train_mean" and r.get("vs_mean_low") is not None and r.get("vs_mean_high") is not None
    ]
    if not scored or any(r["vs_mean_high"] < 0 for r in scored):
        return ""
    best = min(scored, key=lambda r: r["vs_mean"])
    if best["vs_mean"] >= 0:
        return " No model is ahead of the mean predictor."
    half_width = (best["vs_mean_high"] - best["vs_mean_low"]) / 2
    needed = math.ceil(n * (half_width / -best["vs_mean"]) ** 2)
    return (
        f" None beats it: at the best model's difference ({CONDITION_WORDS.get(best['condition'], best['condition'])}, "
        f"{best['vs_mean']:+.2f}) the interval would exclude 0 from about {needed} test subjects."
    )


def _floor_findings(records: list[dict], name: str) -> Iterable[Finding]:
    cnn = next((r for r in records if r["model"] == "cnn"), None)
    mean = next((r for r in records if r["model"] == "train_mean"), None)
    if cnn is None or mean is None:
        return
    n = int(cnn.get("n_subjects") or cnn.get("n") or 0)
    beats = cnn["high"] is not None and cnn["high"] < mean["mae"]
    yield Finding(
        "brain age",
        f"{name} (n = {n})",
        f"CNN MAE {_f(cnn['mae'])} {_interval(cnn['low'], cnn['high'])} years, R^2 "
        f"{_f(cnn.get('r2'))}, against the training-mean predictor's {_f(mean['mae'])}: "
        + ("beats the mean predictor." if beats else "does not beat the mean predictor."),
        n,
        _power(n, MIN_TEST_SUBJECTS, "test subjects"),
    )


def _site_effect_findings(records: list[dict]) -> Iterable[Finding]:
    everything = [r for r in records if r["probe"] == "linear" and "+" in r["sites"]]
    groups = list(dict.fromkeys(r["sites"] for r in everything))
    if not groups:
        return
    group = max(groups, key=lambda g: g.count("+"))  # all sites
    part = {r["adjustment"]: r for r in everything if r["sites"] == group}
    n = int(part["none"]["n_subjects"])
    body = "; ".join(
        f"{ADJUSTMENT_WORDS.get(a, a).lstrip(', ') or 'raw'} {_f(r['balanced_accuracy'])} "
        f"{_interval(r['low'], r['high'])} (n = {r['n_subjects']})"
        for a, r in part.items()
    )
    yield Finding(
        "site effects",
        f"Site effects after preprocessing ({group.replace('+', ', ')}; linear probe on 8^3 "
        f"volumes, every subject; chance {_f(part['none']['chance'])})",
        body + ".",
        n,
        _power(n, MIN_TEST_SUBJECTS, "subjects"),
    )


def headline_findings(tables: dict[str, dict[str, list[dict]]]) -> list[Finding]:
    """The findings from the report's tables (section id -> table title -> records)."""

    def table(section: str, start: str) -> list[dict]:
        return next((records for title, records in tables.get(section, {}).items() if title.startswith(start)), [])

    findings: list[Finding] = []
    findings += _site_effect_findings(table("preprocessing", "Site effects after preprocessing"))
    findings += _site_probe_findings(table("harmonization", "Site probe"))
    findings += _traveling_findings(table("harmonization", "Traveling subjects, mean"))
    findings += _biology_findings(table("harmonization", "Biology kept?"))
    findings += _mean_predictor_findings(table("brain-age", "Brain age, pooled"), "pooled controls")
    findings += _mean_predictor_findings(
        table("brain-age", "Brain age, cross-validated"), "every site's controls, cross-validated"
    )
    findings += _penalty_findings(table("brain-age", "Brain age, cross_site"))
    findings += _floor_findings(table("brain-age", "brain_age bundle"), "Brain age (brain_age bundle, test controls)")
    return findings
