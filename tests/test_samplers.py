"""Samplers and complexity levels: CAS walks one level at a time over all levels, PAS banks keep
their best entries, every sampler is deterministic under a seed and resumes from its state."""

from __future__ import annotations

import json
import random
import zlib

import pytest

from nas.train.levels import build_levels, complexity_function, load_or_build_levels
from nas.train.samplers import Bank, PasSettings, make_sampler, width_preference


@pytest.fixture
def levels(tiny_space):
    complexity = complexity_function(tiny_space, "macs")
    built = build_levels(
        tiny_space, complexity, count=4, draws=150, pool_size=20, seed=0, metric="macs"
    )
    return built, complexity


def _fake_score(archs):
    # Deterministic, arch-dependent scores standing in for minus the mini-batch loss.
    return [-(zlib.crc32(a.to_json().encode()) % 1000) / 1000 for a in archs]


def test_levels_are_geometric_bands_holding_their_pools(tiny_space, levels):
    built, complexity = levels
    assert built.count == 4 and len(built.edges) == 5
    assert built.edges[0] == complexity(tiny_space.min_arch())
    assert built.edges[-1] == complexity(tiny_space.max_arch())
    ratios = [b / a for a, b in zip(built.edges, built.edges[1:], strict=False)]
    assert max(ratios) / min(ratios) < 1.0001
    for level, (pool, values) in enumerate(zip(built.pools, built.values, strict=True)):
        assert pool and len(set(pool)) == len(pool) <= 20
        assert all(built.level_of(complexity(a)) == level for a in pool)
        assert values[0] == min(values) and pool[0] == built.smallest(level)


def test_levels_are_cached_and_rebuilt_when_their_key_changes(tmp_path, tiny_space, levels):
    built, _ = levels
    calls = []

    def build():
        calls.append(1)
        return built

    path = tmp_path / "levels.json"
    first = load_or_build_levels(path, {"seed": 0}, build)
    again = load_or_build_levels(path, {"seed": 0}, build)
    assert len(calls) == 1 and again.pools == first.pools and again.edges == first.edges
    load_or_build_levels(path, {"seed": 1}, build)
    assert len(calls) == 2
    assert json.loads(path.read_text())["format"] == "nas-levels"


def test_cas_moves_at_most_one_level_and_visits_every_level(tiny_space, levels):
    built, complexity = levels
    sampler = make_sampler("cas", tiny_space, 0, subnets=3, levels=built, complexity=complexity)
    visited = []
    for step in range(400):
        archs = sampler.sample(step, 400)
        visited.append(sampler.level)
        assert len(archs) == 3 and archs[0] == built.smallest(sampler.level)
        assert all(built.level_of(complexity(a)) == sampler.level for a in archs)
    assert all(abs(a - b) <= 1 for a, b in zip(visited, visited[1:], strict=False))
    assert set(visited) == set(range(built.count))


def test_pas_bank_keeps_its_best_entries(tiny_space):
    rng = random.Random(0)
    bank = Bank(capacity=5)
    offered = {}
    while len(offered) < 40:
        arch, score = tiny_space.sample(rng), rng.random()
        offered[arch] = score
        bank.offer(arch, score)
    best = sorted(offered.values(), reverse=True)[:5]
    assert sorted(s for _, s in bank.entries) == sorted(best)
    assert bank.best()[0][1] == best[0]
    first = bank.entries[0][0]
    bank.offer(first, 10.0)  # a known arch is updated, not duplicated
    assert len(bank) == 5 and bank.best()[0] == (first, 10.0)
    assert bank.evict(lambda a: a != first) == 1 and len(bank) == 4


def test_pas_exploits_more_as_training_goes_on_and_evicts_archs_that_left_their_level(
    tiny_space, levels
):
    built, complexity = levels
    settings = PasSettings(bank_size=4, exploit_start=0.2, exploit_end=0.8, rescore_every=5)
    assert settings.exploit_probability(0, 101) == pytest.approx(0.2)
    assert settings.exploit_probability(100, 101) == pytest.approx(0.8)
    sampler = make_sampler(
        "cas+pas", tiny_space, 1, subnets=3, levels=built, complexity=complexity, pas=settings
    )
    for step in range(200):
        archs = sampler.sample(step, 200, _fake_score)
        sampler.observe(archs, _fake_score(archs))
    assert all(len(bank) for bank in sampler.banks)
    for level, bank in enumerate(sampler.banks):
        assert all(built.level_of(complexity(a)) == level for a, _ in bank.entries)
    # An entry placed in the wrong level is dropped when that bank is next re-scored.
    level = sampler.level
    stranger = built.pools[(level + 1) % built.count][0]
    sampler.banks[level].entries.append((stranger, 0.0))
    sampler.banks[level].scored_at = -100
    sampler.level = level - 1 if level > 0 else level + 1  # so the next move may land on it
    while sampler.level != level:
        sampler.sample(300, 400, _fake_score)
    assert stranger not in [a for a, _ in sampler.banks[level].entries]


def test_pas_explores_toward_width(tiny_space):
    wide = tiny_space.max_arch()
    shallow_wide = tiny_space.assemble(
        [
            tiny_space.min_arch().resolution
            if d.name == "resolution"
            else (
                min(d.values)
                if d.choice == "depth"
                else max(d.values)
                if d.choice == "width"
                else d.values[0]
            )
            for d in tiny_space.dimensions
        ]
    )
    assert width_preference(tiny_space, shallow_wide) > width_preference(tiny_space, wide)


@pytest.mark.parametrize("name", ["uniform", "sandwich", "cas", "cas+pas"])
def test_samplers_are_deterministic_under_a_seed_and_resume_from_their_state(
    name, tiny_space, levels
):
    built, complexity = levels

    def make(seed):
        return make_sampler(
            name, tiny_space, seed, subnets=3, best_of=2, levels=built, complexity=complexity
        )

    def run(sampler, steps, start=0):
        out = []
        for step in range(start, start + steps):
            archs = sampler.sample(step, 60, _fake_score)
            sampler.observe(archs, _fake_score(archs))
            out.append(archs)
        return out

    first, second, other = make(5), make(5), make(6)
    assert run(first, 30) == run(second, 30)
    assert run(make(5), 30) != run(other, 30)
    state = json.loads(json.dumps(first.state_dict()))  # plain types only
    resumed = make(123)
    resumed.load_state_dict(state)
    assert run(resumed, 30, 30) == run(first, 30, 30)


def test_sandwich_trains_the_extremes_and_best_of_picks_the_best_score(tiny_space):
    sandwich = make_sampler("sandwich", tiny_space, 0, subnets=3)
    assert sandwich.trains_max and sandwich.sample(0, 10)[0] == tiny_space.min_arch()
    best = make_sampler("uniform", tiny_space, 0, subnets=1, best_of=4)
    seen = []

    def score(archs):
        seen.append(list(archs))
        return [float(k) for k in range(len(archs))]

    (picked,) = best.sample(0, 10, score)
    assert len(seen[0]) == 4 and picked == seen[0][-1]


def test_latency_levels_from_a_device_table(shared_data):
    import search_spaces

    space = search_spaces.get("elasticvit")
    table = str(shared_data / "pixel4_elasticvit" / "pixel4_lut.json")
    latency = complexity_function(
        space.with_task(num_classes=10, in_channels=1), "latency", table, base=space
    )
    built = build_levels(space, latency, count=5, draws=100, pool_size=10, seed=0, metric="latency")
    assert built.metric == "latency" and 1 <= built.count <= 5
    assert 0 < built.edges[0] < built.edges[-1] < 1000  # milliseconds on a Pixel 4


def test_latency_levels_from_a_device_profile_match_the_table(shared_data, tmp_path):
    import search_spaces
    from predictors.tables import import_table

    space = search_spaces.get("elasticvit")
    trained = space.with_task(num_classes=10, in_channels=1)
    table = shared_data / "pixel4_elasticvit" / "pixel4_lut.json"
    profile = tmp_path / "pixel4.json"
    import_table("pixel4", table).save(profile)
    from_table = complexity_function(trained, "latency", str(table), base=space)
    from_profile = complexity_function(trained, "latency", str(profile), base=space)
    for seed in range(20):
        arch = space.sample(seed)
        assert from_profile(arch) == pytest.approx(from_table(arch), rel=1e-9)
    built = build_levels(
        space, from_profile, count=4, draws=60, pool_size=5, seed=0, metric="latency"
    )
    assert built.edges[0] == pytest.approx(from_table(space.min_arch()), rel=1e-9)
