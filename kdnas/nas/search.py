"""Evolutionary search for subnets under parameter, MAC and latency limits.

AlphaNet-style Pareto search (salnas.md §11, nas-and-costs.md §6), reimplemented: an initial
population (the min subnet plus random feasible subnets), then per generation ``mutate_size``
mutations (each gene resampled to a *different* value with ``mutate_prob``) and ``crossover_size``
uniform crossovers of archive members. Constraints are hard: infeasible children are resampled (up
to ``max_tries``), never scored. Every candidate is scored after BN recalibration on a training subset
(never the reporting split, D9); costs come from the one MACs counter (FlopCounterMode / 2, including
the decoder and the real H x W, D5) and, optionally, measured CPU latency. The archive keeps the best
candidate per MACs bucket; the output is the Pareto front of (fitness, MACs) plus every evaluated genome.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from kdnas.nas.space import ArchConfig, SearchSpace


@dataclass
class Constraints:
    max_params: int | None = None
    max_macs: int | None = None
    max_latency_ms: float | None = None

    def violations(self, costs: dict[str, Any]) -> list[str]:
        out = []
        if self.max_params is not None and costs["params"] > self.max_params:
            out.append(f"params {costs['params']:,} > {self.max_params:,}")
        if self.max_macs is not None and costs["macs"] > self.max_macs:
            out.append(f"MACs {costs['macs']:,} > {self.max_macs:,}")
        if self.max_latency_ms is not None and costs.get("latency_ms", 0.0) > self.max_latency_ms:
            out.append(f"latency {costs['latency_ms']:.2f} ms > {self.max_latency_ms} ms")
        return out


@dataclass
class Candidate:
    arch: dict[str, Any]
    costs: dict[str, Any]
    fitness: float  # lower is better (the task's selection score)
    metrics: dict[str, Any] = field(default_factory=dict)
    origin: str = "random"


@dataclass
class SearchConfig:
    population: int = 8
    generations: int = 4
    mutate_size: int = 4
    crossover_size: int = 4
    mutate_prob: float = 0.2
    bucket_macs: int = 10_000_000  # Pareto archive bucket width (AlphaNet: 10 MFLOPs)
    max_tries: int = 200
    seed: int = 0


def pareto_front(candidates: list[Candidate]) -> list[Candidate]:
    """Candidates not dominated in (MACs, fitness): no other is cheaper-or-equal and better-or-equal."""
    front = []
    for c in sorted(candidates, key=lambda c: (c.costs["macs"], c.fitness)):
        if not front or c.fitness < front[-1].fitness:
            front.append(c)
    return front


def evolutionary_search(space: SearchSpace, cost_fn: Callable[[ArchConfig], dict[str, Any]],
                        score_fn: Callable[[ArchConfig], tuple[float, dict[str, Any]]], constraints: Constraints,
                        cfg: SearchConfig, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    rng = random.Random(cfg.seed)
    seen: dict[str, Candidate] = {}
    rejected = 0

    def feasible(arch: ArchConfig) -> dict[str, Any] | None:
        nonlocal rejected
        costs = cost_fn(arch)
        if constraints.violations(costs):
            rejected += 1
            return None
        return costs

    def evaluate(arch: ArchConfig, costs: dict[str, Any], origin: str) -> Candidate:
        key = arch.key()
        if key not in seen:
            fitness, metrics = score_fn(arch)
            seen[key] = Candidate(arch.to_dict(), costs, float(fitness), metrics, origin)
            log(f"{origin:9s} fitness={fitness:.4f} params={costs['params'] / 1e6:.2f}M "
                f"MACs={costs['macs'] / 1e6:.1f}M")
        return seen[key]

    def sample(make: Callable[[], ArchConfig], origin: str) -> Candidate | None:
        for _ in range(cfg.max_tries):
            arch = make()
            if arch.key() in seen:
                continue
            costs = feasible(arch)
            if costs is not None:
                return evaluate(arch, costs, origin)
        return None

    population: list[Candidate] = []
    min_arch = space.min_arch()
    min_costs = feasible(min_arch)
    if min_costs is None:
        raise ValueError(f"even the min subnet violates the constraints: {constraints.violations(cost_fn(min_arch))}")
    population.append(evaluate(min_arch, min_costs, "min"))
    while len(population) < cfg.population:
        cand = sample(lambda: space.random_arch(rng), "random")
        if cand is None:
            break
        population.append(cand)

    archive = _bucketed(population, cfg.bucket_macs)
    for gen in range(cfg.generations):
        parents = list(archive.values())
        children = []
        for _ in range(cfg.mutate_size):
            parent = ArchConfig(**rng.choice(parents).arch)
            cand = sample(lambda p=parent: space.mutate(p, cfg.mutate_prob, rng), f"mutate{gen + 1}")
            children += [cand] if cand else []
        for _ in range(cfg.crossover_size):
            a, b = (ArchConfig(**rng.choice(parents).arch) for _ in range(2))
            cand = sample(lambda a=a, b=b: space.crossover(a, b, rng), f"cross{gen + 1}")
            children += [cand] if cand else []
        archive = _bucketed(list(archive.values()) + children, cfg.bucket_macs)
    evaluated = list(seen.values())
    front = pareto_front(evaluated)
    best = min(evaluated, key=lambda c: c.fitness)
    return {"best": asdict(best), "pareto_front": [asdict(c) for c in front],
            "evaluated": [asdict(c) for c in evaluated], "n_evaluated": len(evaluated),
            "n_rejected_by_constraints": rejected, "constraints": asdict(constraints), "search": asdict(cfg)}


def _bucketed(candidates: list[Candidate], step: int) -> dict[int, Candidate]:
    """Best (lowest fitness) candidate per MACs bucket."""
    archive: dict[int, Candidate] = {}
    for c in candidates:
        b = int(c.costs["macs"] // max(step, 1))
        if b not in archive or c.fitness < archive[b].fitness:
            archive[b] = c
    return archive
