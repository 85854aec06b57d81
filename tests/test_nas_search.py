"""Evolutionary subnet search: hard constraints, Pareto front, determinism, and the CLI on a real run."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kdnas.cli.app import app
from kdnas.models.salnas import SalNASSubnet
from kdnas.nas.costs import count_macs
from kdnas.nas.search import Candidate, Constraints, SearchConfig, evolutionary_search, pareto_front
from kdnas.nas.space import ArchConfig, load_space

SPACE = load_space("salnas_tiny")


def _analytic_costs(arch: ArchConfig) -> dict:
    # a cheap, monotone stand-in for MACs/params: wider, deeper, larger-kernel subnets cost more
    macs = sum(w * d * k * e for w, d, k, e in zip(arch.widths[1:], arch.depths, arch.kernels, arch.expands, strict=True))
    return {"params": macs * 10, "macs": macs * arch.resolution[0] * arch.resolution[1] // 100}


def _fitness(arch: ArchConfig) -> tuple[float, dict]:
    # bigger is better but with diminishing returns, plus a preference for kernel 5 in stage 3
    c = _analytic_costs(arch)["macs"]
    return 1.0 / (1.0 + c / 1e5) - 0.05 * (arch.kernels[2] == 5), {}


def test_constraints_are_hard_and_front_is_pareto():
    limit = int(_analytic_costs(SPACE.max_arch())["macs"] * 0.4)
    res = evolutionary_search(SPACE, _analytic_costs, _fitness, Constraints(max_macs=limit),
                              SearchConfig(population=6, generations=3, seed=1))
    assert res["n_evaluated"] >= 6 and res["n_rejected_by_constraints"] > 0
    assert all(c["costs"]["macs"] <= limit for c in res["evaluated"])
    front = res["pareto_front"]
    for a in front:  # no evaluated candidate dominates a front member
        assert not any(b["costs"]["macs"] <= a["costs"]["macs"] and b["fitness"] < a["fitness"] for b in res["evaluated"])
    assert res["best"]["fitness"] == min(c["fitness"] for c in res["evaluated"])
    again = evolutionary_search(SPACE, _analytic_costs, _fitness, Constraints(max_macs=limit),
                                SearchConfig(population=6, generations=3, seed=1))
    assert again["evaluated"] == res["evaluated"]  # deterministic given the seed


def test_infeasible_min_subnet_is_reported():
    with pytest.raises(ValueError, match="even the min subnet violates"):
        evolutionary_search(SPACE, _analytic_costs, _fitness, Constraints(max_params=1), SearchConfig())


def test_pareto_front_helper():
    cands = [Candidate({}, {"macs": m}, f) for m, f in [(1, 3.0), (2, 2.0), (3, 2.5), (4, 1.0), (4, 1.5)]]
    assert [(c.costs["macs"], c.fitness) for c in pareto_front(cands)] == [(1, 3.0), (2, 2.0), (4, 1.0)]


@pytest.mark.slow
def test_search_cli_on_a_trained_supernet(tmp_path, monkeypatch):
    from kdnas import api

    monkeypatch.setenv("KDNAS_CACHE", str(tmp_path / "cache"))
    api.train("salnas_tiny", out_dir=tmp_path / "run", progress=False, overrides={
        "train.epochs": 1, "data.builtin": {"n_images": 32, "size": [48, 64], "seed": 0}, "train.tensorboard": False,
        "train.batch_size": 8, "train.bn_calibration.num_images": 8})
    limit = count_macs(SalNASSubnet("salnas_tiny", "max"), (3, 64, 96)) // 3
    result = CliRunner().invoke(app, ["search", str(tmp_path / "run"), "--max-macs", str(limit), "--population", "3",
                                      "--generations", "1", "--mutate-size", "1", "--crossover-size", "1", "--quiet",
                                      "--out", str(tmp_path / "search")])
    assert result.exit_code == 0, result.output
    found = json.loads((tmp_path / "search" / "search.json").read_text())
    assert all(c["costs"]["macs"] <= limit for c in found["evaluated"])
    best = tmp_path / "search" / "best_arch.json"
    assert SalNASSubnet("salnas_tiny", str(best)).arch.to_dict() == found["best"]["arch"]
    assert (tmp_path / "search" / "pareto.png").stat().st_size > 1000
    profiled = CliRunner().invoke(app, ["profile", "--model", "salnas", "--space", "salnas_tiny", "--subnet", str(best), "--json"])
    assert json.loads(profiled.stdout)["macs"] == found["best"]["costs"]["macs"]
