"""RunLayout: every documented path lies in the run folder, and no two outputs share one."""

from __future__ import annotations

from pipeline.run import RunLayout


def test_every_path_is_inside_the_run_and_unique(tmp_path):
    lines = RunLayout(tmp_path / "run").tree().splitlines()
    paths = [line.split()[0] for line in lines]
    assert len(paths) == len(set(paths)) >= 40
    assert all(not p.startswith(("/", "..")) for p in paths)
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines), "every path says what it holds"


def test_parametrised_paths_place_each_pair_protocol_bundle_and_seed(tmp_path):
    run = RunLayout(tmp_path)
    assert run.cyclegan("ukb", "oasis") != run.cyclegan("oasis", "ukb")
    assert run.relative(run.benchmark_summary("held_out")) == "benchmark/held_out/summary.json"
    assert run.relative(run.downstream_metrics("ad_classification")) == "ad_classification/eval/metrics.json"
    assert run.relative(run.downstream_seed("brain_age", 2)) == "brain_age/seeds/seed2"
