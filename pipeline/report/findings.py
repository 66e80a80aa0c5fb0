"""Headline findings: the report's first lines, written from the numbers with their intervals and n.

Each finding answers one of the questions users bring (how much site signal is left, how close a
traveling subject comes to its reference scan, how much of the cross-site brain-age penalty is removed,
is the biology kept, do the models beat their floors), names every method beside the identity, and says
plainly when a method does not beat it. A method "beats" the identity only when the 95% interval of its
paired difference to the identity (same subjects, same resamples) excludes zero; otherwise it "does not
beat identity". A finding with too few subjects to mean anything says "underpowered" and why, instead of
reading like a result. The headline lists the powered findings first, then one statement of what a run
of this size cannot answer, with the n each question needs (:func:`underpowered_statement`).

The findings read the tables :mod:`pipeline.report.collect` copied from the run's files, by their stable table
id (:mod:`pipeline.report.tables`), never by caption; nothing is recomputed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

__all__ = [
    "Finding",
    "headline_findings",
    "underpowered_statement",
    "MIN_TEST_SUBJECTS",
    "MIN_TRAVELING_SUBJECTS",
]

#: Fewer test subjects than this and a probe or a brain-age error cannot tell methods apart (the benchmark's
#: own threshold, pipeline.experiments.brain_age_benchmark.UNDERPOWERED_N).
MIN_TEST_SUBJECTS = 20
#: Fewer traveling (paired) subjects than this and a fidelity difference is anecdote.
MIN_TRAVELING_SUBJECTS = 10


@dataclass(frozen=True)
class Finding:
    """One headline: ``topic``, what was measured (``title``), the numbers (``body``), the number of subjects
    behind it and, when too few, why (``underpowered``), with the n it needs (``needed``, counting ``unit``) and any
    other shortfall (``also``, e.g. too few runs) for :func:`underpowered_statement`."""

    topic: str
    title: str
    body: str
    n: int
    underpowered: str = ""
    needed: int = 0
    unit: str = "subjects"
    also: str = ""

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


STUDY_COMMAND = "mriharmony demo --scale study"
STUDY_POINTER = f"see the study run ({STUDY_COMMAND})"


def _power(n: int, minimum: int, what: str) -> dict[str, Any]:
    """The underpowered fields of a :class:`Finding` on ``n`` subjects (``what``) that needs ``minimum``."""
    if n >= minimum:
        return {}
    return {"underpowered": f"n = {n} {what} < {minimum}; {STUDY_POINTER}", "needed": minimum, "unit": what}


def _benchmark_power(record: dict, n: int) -> dict[str, Any]:
    """The benchmark's own reasons (too few test subjects or runs), else the n threshold."""
    reason = record.get("underpowered")
    if not reason:
        return _power(n, MIN_TEST_SUBJECTS, "test subjects")
    needed = MIN_TEST_SUBJECTS if n < MIN_TEST_SUBJECTS else 0
    others = "; ".join(part for part in str(reason).split("; ") if "test subjects" not in part)  # e.g. too few runs
    return {
        "underpowered": f"{reason}; {STUDY_POINTER}",
        "needed": needed,
        "unit": "test subjects",
        "also": others or ("" if needed else str(reason)),
    }


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
            **_power(n, MIN_TEST_SUBJECTS, "subjects"),
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
        + ". Traveling subjects are controls: whether a method keeps the AD effect is measured on the other "
        "subjects, within site (below).",
        n,
        **_power(n, MIN_TRAVELING_SUBJECTS, "traveling subjects"),
    )


def _at_floor(identity: dict, *, higher_is_better: bool) -> bool:
    """Whether the identity's interval reaches the probe's floor (chance, or the mean predictor's MAE): then no
    condition can fall significantly below it, and "kept" cannot fail."""
    floor, low, high = identity.get("floor"), identity.get("low"), identity.get("high")
    if floor is None or low is None or high is None:
        return True
    return low <= floor if higher_is_better else high >= floor


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
        at_floor = _at_floor(identity, higher_is_better=task == "diagnosis")
        yield Finding(
            "biology kept",
            f"Biology kept? {what} on {INPUT_WORDS.get(source, source)}, both sites pooled (n = {n}{floor})",
            f"identity {_f(identity['estimate'])} {_interval(identity['low'], identity['high'])}; "
            + "; ".join(others)
            + (
                "; the identity is at the floor, so 'kept' cannot fail here (see biology within site)."
                if at_floor
                else "."
            ),
            n,
            **_power(n, MIN_TEST_SUBJECTS, "subjects"),
        )


MEASURE_WORDS = {
    "hippocampus_mean": "hippocampus",
    "ventricles_mean": "ventricles",
    "gm_mean": "grey matter",
    "wm_mean": "white matter",
    "regional means": "CN-vs-AD probe",
}


def _kept_words(r: dict) -> str:
    """One condition's within-site effect beside the identity's: kept or lost, with the paired difference."""
    difference = f"{r['difference_to_identity']:+.2f} {_interval(r['difference_low'], r['difference_high'])}"
    return f"{r['condition']} {_f(r['estimate'])} ({'kept' if r['kept'] else 'lost'}: {difference})"


def _within_site_findings(records: list[dict]) -> Iterable[Finding]:
    """Per site, the AD effects (with the CN-vs-AD probe) and the age slopes inside the site, each condition kept
    or lost against the identity; measures whose raw effect is at its floor are named as unable to fail."""
    for site, kind in dict.fromkeys((r["site"], "age" if r["effect"] == "age" else "AD") for r in records):
        part = [r for r in records if r["site"] == site and ("age" if r["effect"] == "age" else "AD") == kind]
        identities = [r for r in part if r["condition"] == "identity"]
        if not identities:
            continue
        measured, floors = [], []
        for raw in identities:
            words = MEASURE_WORDS.get(raw["measure"], raw["measure"])
            if raw["floor"]:
                floors.append(words)
                continue
            others = [
                _kept_words(r)
                for r in part
                if (r["effect"], r["measure"]) == (raw["effect"], raw["measure"]) and r["condition"] != "identity"
            ]
            measured.append(
                f"{words}: identity {_f(raw['estimate'])} {_interval(raw['low'], raw['high'])}"
                + (f", {', '.join(others)}" if others else "")
            )
        if floors:
            measured.append(f"at the floor, so 'kept' cannot fail: {', '.join(floors)}")
        n = int(min(r["n_subjects"] for r in identities))
        what = (
            "AD effects (Cohen's d, AD - CN; probe: balanced accuracy)"
            if kind == "AD"
            else "age slopes of the controls (SD per decade)"
        )
        yield Finding(
            "biology within site",
            f"Biology within {site}, {what} (its own subjects, n = {n})",
            "; ".join(measured) + ".",
            n,
            **_power(n, MIN_TEST_SUBJECTS, "subjects"),
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
        yield Finding(
            "cross-site brain age",
            f"Cross-site brain-age penalty, trained on {route[0]}, tested on {route[1]} "
            f"(MAE minus the same model's within-site MAE, years; {raw['runs']} runs, n = {n})",
            f"raw {_f(raw['penalty'])} {_interval(raw['penalty_low'], raw['penalty_high'])}; remaining after "
            + "; ".join(others)
            + ".",
            n,
            **_benchmark_power(raw, n),
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
    yield Finding(
        "brain age",
        f"Brain-age MAE against the training-mean predictor ({protocol}; years; {runs} "
        f"run{'s' if runs != 1 else ''}, n = {n}; mean predictor {_f(records[0]['mean_predictor_mae'])})",
        "; ".join(parts) + "." + _subjects_needed(records, n),
        n,
        **_benchmark_power(records[0], n),
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
        **_power(n, MIN_TEST_SUBJECTS, "test subjects"),
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
        **_power(n, MIN_TEST_SUBJECTS, "subjects"),
    )


def headline_findings(tables: Mapping[str, Mapping[str, list[dict]]]) -> list[Finding]:
    """The findings from the report's tables (section id -> table id -> records, as
    :func:`pipeline.report.tables.records_by_id` gives them): the powered ones first, each group in page order."""

    def table(section: str, table_id: str) -> list[dict]:
        return list(tables.get(section, {}).get(table_id, []))

    findings: list[Finding] = []
    findings += _site_effect_findings(table("preprocessing", "site-effects"))
    findings += _site_probe_findings(table("harmonization", "site-probe"))
    findings += _traveling_findings(table("harmonization", "traveling-mean"))
    findings += _biology_findings(table("harmonization", "biology-kept"))
    within_site = table("harmonization", "biology-within-site")
    findings += _within_site_findings(within_site)
    if not within_site and table("harmonization", "biology-kept"):
        findings.append(
            Finding(
                "biology within site",
                "Biology within site",
                "",
                0,
                "not measured: no site of the evaluated split has 3 CN and 3 AD subjects, or 5 controls, of its own; "
                + STUDY_POINTER,
                also="no site with 3 CN and 3 AD, or 5 controls, of its own",
            )
        )
    findings += _mean_predictor_findings(table("brain-age", "brain-age-pooled"), "pooled controls")
    findings += _mean_predictor_findings(
        table("brain-age", "brain-age-cross-validated"), "every site's controls, cross-validated"
    )
    findings += _penalty_findings(table("brain-age", "brain-age-cross-site"))
    findings += _floor_findings(table("brain-age", "brain-age-bundle"), "Brain age (brain_age bundle, test controls)")
    return sorted(findings, key=lambda f: bool(f.underpowered))  # stable: page order within each group


#: how :func:`underpowered_statement` names each topic
TOPIC_WORDS = {
    "traveling subjects": "traveling-subject fidelity",
    "brain age": "brain age against the mean predictor",
    "cross-site brain age": "cross-site brain-age penalty",
}


def underpowered_statement(findings: Iterable[Finding]) -> str:
    """One sentence for every underpowered finding: per topic, the n this run has and the n a verdict needs.

    Examples:
        >>> underpowered_statement(  # doctest: +NORMALIZE_WHITESPACE
        ...     [
        ...         Finding("site probe", "t", "b", 6, "why", 20),
        ...         Finding("site probe", "t", "b", 2, "why", 20),
        ...         Finding("traveling subjects", "t", "b", 2, "why", 10, "traveling subjects"),
        ...     ]
        ... )
        'Underpowered at this size, each needs the study run (mriharmony demo --scale study): site probe (n = 2-6 <
        20 subjects), traveling-subject fidelity (n = 2 < 10 traveling subjects).'
    """
    topics: dict[str, list[Finding]] = {}
    for finding in findings:
        if finding.underpowered:
            topics.setdefault(finding.topic, []).append(finding)
    if not topics:
        return ""
    items = []
    for topic, part in topics.items():
        shortfalls = []
        short = [f for f in part if f.needed]
        if short:
            low, high = min(f.n for f in short), max(f.n for f in short)
            span = str(low) if low == high else f"{low}-{high}"
            shortfalls.append(f"n = {span} < {max(f.needed for f in short)} {short[0].unit}")
        shortfalls += dict.fromkeys(f.also for f in part if f.also)
        items.append(f"{TOPIC_WORDS.get(topic, topic)} ({'; '.join(shortfalls) or 'underpowered'})")
    return f"Underpowered at this size, each needs the study run ({STUDY_COMMAND}): {', '.join(items)}."
