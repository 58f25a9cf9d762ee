"""Search algorithms on a cheap, documented problem: constraints met, fronts and resume."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import optuna
import pytest

import search_spaces
from nas.search import ALGORITHMS, Constraint, Objective, Problem, make_searcher, run_search
from nas.search.generative import BudgetPolicy, GenerativeSearch
from nas.search.pareto import hypervolume, pareto_mask
from nas.search.problem import InfeasibleBudgetError
from nas.search.results import best_under, pareto_front, write_report
from predictors.complexity import ComplexityTable

#: MACs and parameters of hybrid-tiny archs, tabulated per layer: the same counts as
#: nas.graph.count without building each arch's operator graph (the searches count thousands).
COUNTS = ComplexityTable(search_spaces.get("hybrid-tiny"))


def _mmacs(archs):
    return COUNTS.count(archs)[0] / 1e6


def _capacity(archs):
    """A cheap stand-in for accuracy: log of parameters with a bonus for softmax attention."""
    bonus = np.array([sum(0.1 for s in a.stages if s.attention == "softmax") for a in archs])
    return np.log(COUNTS.count(archs)[1]) + bonus


def _problem(budget=3.0, capacity=_capacity):
    space = search_spaces.get("hybrid-tiny")
    return Problem(
        space,
        [Objective("capacity", capacity), Objective("mmacs", _mmacs, maximize=False)],
        [Constraint("mmacs", _mmacs, budget, "M")],
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_evaluates_only_new_feasible_archs(algorithm, tmp_path):
    """An evaluation is a new arch under every budget: proposals over a budget or seen before
    are told back unevaluated and do not count toward the evaluations asked for."""
    evaluated = []
    problem = _problem(capacity=lambda archs: evaluated.extend(archs) or _capacity(archs))
    searcher = make_searcher(algorithm, problem, seed=0, evaluations=120)
    found = run_search(problem, searcher, 120, tmp_path, batch_size=20, progress=False)
    assert len(found) == 120
    assert all(e.feasible for e in found)
    assert len({e.arch for e in found}) == 120
    assert sorted(map(str, evaluated)) == sorted(str(e.arch) for e in found)  # nothing else
    assert all(v <= 3.0 for v in _mmacs(evaluated))
    counts = json.loads((tmp_path / "progress.json").read_text())
    assert counts["evaluations"] == 120
    assert counts["proposals"] == 120 + counts["infeasible"] + counts["repeats"]
    assert len((tmp_path / "history.jsonl").read_text().splitlines()) == 120
    if algorithm == "generative":  # the policy learnt the budget before any evaluation
        assert searcher.policy_feasible_share >= 0.95


@pytest.mark.slow  # a quality proof (tens of seconds); benchmarks/search_efficiency.py measures it
def test_evolution_beats_random_at_equal_evaluations(tmp_path):
    scores = {}
    for algorithm in ("random", "evolution"):
        runs = []
        for seed in range(3):
            problem = _problem(budget=2.0)
            folder = tmp_path / f"{algorithm}{seed}"
            found = run_search(
                problem, make_searcher(algorithm, problem, seed), 300, folder, progress=False
            )
            runs.append(best_under(found, problem, "mmacs", 2.0).objectives["capacity"])
        scores[algorithm] = np.mean(runs)
    assert scores["evolution"] >= scores["random"]


def test_infeasible_budget_is_refused_at_once_with_the_range(tmp_path):
    problem = _problem(budget=0.01)
    with pytest.raises(InfeasibleBudgetError, match=r"smallest arch needs [\d.]+ ?M"):
        run_search(problem, make_searcher("evolution", problem), 10, tmp_path, progress=False)
    assert not (tmp_path / "history.jsonl").exists()


def test_search_resumes_after_an_interruption(tmp_path):
    problem = _problem()
    run_search(problem, make_searcher("evolution", problem, 1), 60, tmp_path, progress=False)
    with (tmp_path / "history.jsonl").open("a") as f:
        f.write('{"index": 60, "arch": {"trunc')  # a kill in the middle of a write
    resumed = run_search(
        _problem(), make_searcher("evolution", _problem(), 1), 100, tmp_path, progress=False
    )
    assert len(resumed) == 100
    records = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(100))


def test_another_search_in_the_same_folder_is_refused(tmp_path):
    problem = _problem()
    run_search(problem, make_searcher("random", problem), 10, tmp_path, progress=False)
    other = _problem(budget=4.0)
    with pytest.raises(Exception, match="holds another search"):
        run_search(other, make_searcher("random", other), 10, tmp_path, progress=False)


def _journal(folder):
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(folder / "study.journal")))


def test_optuna_study_is_stored_for_the_dashboard_and_resumes(tmp_path):
    problem = _problem()
    run_search(
        problem,
        make_searcher("nsga2", problem, 0, study_name="mine"),
        40,
        tmp_path,
        batch_size=10,
        progress=False,
    )
    study = optuna.load_study(study_name="mine", storage=_journal(tmp_path))
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len({tuple(t.params.items()) for t in complete}) == 40  # repeats: told, not evaluated
    assert study.metric_names == ["capacity", "mmacs"]
    told = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    for trial in study.get_trials(states=told):  # where constraints_func puts them, as the
        # dashboard reads them; enqueued start-up archs not asked yet wait
        assert trial.system_attrs["constraints"] == [trial.user_attrs["mmacs"] - 3.0]
        assert (trial.system_attrs["constraints"][0] <= 0) == (trial in complete)
    assert all(t.system_attrs["constraints"][0] <= 0 for t in study.best_trials)
    assert study.directions == [
        optuna.study.StudyDirection.MAXIMIZE,
        optuna.study.StudyDirection.MINIMIZE,
    ]
    problem = _problem()
    run_search(
        problem,
        make_searcher("nsga2", problem, 0, study_name="mine"),
        60,
        tmp_path,
        batch_size=10,
        progress=False,
    )
    study = optuna.load_study(study_name="mine", storage=_journal(tmp_path))
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len({tuple(t.params.items()) for t in complete}) == 60


@pytest.mark.slow  # minutes of policy training; every algorithm's CLI test runs generative briefly
def test_generative_policy_serves_any_budget_after_training(tmp_path):
    problem = _problem(budget=3.0)
    searcher = GenerativeSearch(problem, seed=0)
    run_search(problem, searcher, 600, tmp_path, batch_size=40, progress=False)
    policy = BudgetPolicy.load(tmp_path / "generator.json", problem.space)
    constraint = problem.constraints[0]
    for budget in (1.5, 3.0, 6.0):
        archs = policy.generate(budget, constraint, n=5)
        assert archs, budget
        assert all(v <= budget for v in constraint.evaluate(archs))
    # a larger budget buys a larger proposed model
    small = np.mean(_mmacs(policy.generate(1.5, constraint, n=5)))
    large = np.mean(_mmacs(policy.generate(6.0, constraint, n=5)))
    assert large > small


def test_pareto_and_hypervolume():
    points = np.array([[1.0, 1.0], [2.0, 0.5], [0.5, 2.0], [0.9, 0.9], [1.0, 1.0]])
    mask = pareto_mask(points)
    assert mask.tolist() == [True, True, True, False, False]
    assert hypervolume(points, np.array([0.0, 0.0])) == pytest.approx(1 + 1 * 0.5 + 0.5 * 1)
    cube = np.array([[1.0, 1.0, 1.0]])
    assert hypervolume(cube, np.zeros(3)) == pytest.approx(1.0)


def test_report_has_front_best_hypervolume_and_plot(tmp_path):
    problem = _problem()
    found = run_search(problem, make_searcher("random", problem), 80, tmp_path, progress=False)
    report = write_report(found, problem, tmp_path, "random")
    part = report["per_constraint"]["mmacs"]
    assert part["best"]["constraints"]["mmacs"] <= 3.0
    assert part["hypervolume"] > 0
    front = pareto_front(found, problem, "mmacs")
    costs = [e.constraints["mmacs"] for e in front]
    scores = [e.objectives["capacity"] for e in front]
    assert costs == sorted(costs) and scores == sorted(scores)  # more cost buys more score
    assert (tmp_path / part["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "results.json").read_text())["format"] == "nas-search-report"


def test_search_package_does_not_import_torch():
    code = (
        "import sys, nas.search, nas.search.optuna_search, nas.search.generative, "
        "nas.search.results; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_refitted_accuracy_measures_warmup_then_only_the_verified_share():
    from nas.search.surrogate import RefittedAccuracy, SurrogateSettings

    space = search_spaces.get("hybrid-tiny")
    calls = []

    def measure(archs):
        calls.append(len(archs))
        return _capacity(archs)

    accuracy = RefittedAccuracy(space, measure, SurrogateSettings("ridge", 40, 0.25, 20))
    rng = np.random.default_rng(0)
    batches = [[space.sample(int(s)) for s in rng.integers(0, 2**31, 20)] for _ in range(8)]
    for batch in batches[:2]:
        assert np.allclose(accuracy(batch), _capacity(batch))  # warm-up: all measured
    assert sum(calls) == len(accuracy.measured) == 40
    for batch in batches[2:]:
        before = len(accuracy.measured)
        fresh = [a for a in dict.fromkeys(batch) if a not in accuracy.measured]
        values = accuracy(batch)
        assert len(accuracy.measured) - before == int(np.ceil(0.25 * len(fresh)))
        measured = [i for i, a in enumerate(batch) if a in accuracy.measured]
        assert np.allclose(values[measured], _capacity([batch[i] for i in measured]))
    assert sum(calls) < 8 * 20 and accuracy.fits >= 2  # refitted as measurements came in
    summary = accuracy.summary()
    assert summary["heldout_checks"] == 6 * 5
    assert summary["heldout_kendall_tau"] > 0.3  # a smooth proxy ranks well


def test_refitted_accuracy_starts_from_earlier_measurements():
    from nas.search.surrogate import RefittedAccuracy, SurrogateSettings

    space = search_spaces.get("hybrid-tiny")
    known = [space.sample(s) for s in range(30)]
    settings = SurrogateSettings("ridge", warmup=30, verify=0.0)
    accuracy = RefittedAccuracy(space, lambda archs: pytest.fail("measured"), settings)
    accuracy.remember(dict(zip(known, _capacity(known), strict=True)))
    values = accuracy([space.sample(s) for s in range(100, 110)])  # predicted, none measured
    assert values.shape == (10,) and np.isfinite(values).all() and accuracy.fits == 1
