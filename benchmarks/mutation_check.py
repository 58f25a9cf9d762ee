"""Does the test suite notice a bug? Deliberate one-line bugs in the core, each tried on a copy.

For each mutation below, the repository's files (as git sees them: tracked and untracked, not
ignored) are copied to a temporary folder, one line is changed there, and the tests that should
notice run against the copy (``PYTHONPATH`` points at it, so the installed ``nas`` command runs the
mutated code too). A mutation is *caught* when those tests fail. The same tests first run on an
unchanged copy: a mutation counts only where they pass unchanged.

    python benchmarks/mutation_check.py                 # every mutation
    python benchmarks/mutation_check.py --only crop     # mutations whose name contains 'crop'
    python benchmarks/mutation_check.py --list

Prints one row per mutation: name, file, the tests run, caught / missed, seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # file in the repository
    old: str  # text found exactly once in it
    new: str  # what it becomes
    tests: tuple[str, ...]  # pytest arguments: files, node ids, -k expressions


MUTATIONS = (
    Mutation(
        "kernel crop off by one",
        "nas/supernet/elastic.py",
        "start = (self.max_kernel - self.kernel) // 2",
        "start = (self.max_kernel - self.kernel) // 2 + 1",
        ("tests/test_extract.py",),
    ),
    Mutation(
        "budget comparison flipped (search)",
        "nas/search/problem.py",
        "[all(v[c.name] <= c.limit for c in self.constraints) for v in values]",
        "[all(v[c.name] >= c.limit for c in self.constraints) for v in values]",
        ("tests/test_search.py",),
    ),
    Mutation(
        "budget comparison flipped (extract)",
        "nas/deploy.py",
        "meets = latency <= budget",
        "meets = latency >= budget",
        ("tests/test_readme.py", "-k", "extract_--run"),
    ),
    Mutation(
        "first budget only (search)",
        "nas/deploy.py",
        "constraints = [d.budget(b) for d, b in zip(devices, budgets_ms, strict=True)]",
        "constraints = [d.budget(b) for d, b in zip(devices[:1], budgets_ms[:1], strict=True)]",
        ("tests/test_commands.py", "-k", "two_devices"),
    ),
    Mutation(
        "latency overhead constant dropped",
        "predictors/latency.py",
        "            + self.per_structural * structural\n            + self.constant\n",
        "            + self.per_structural * structural\n",
        ("tests/test_latency_predictor.py", "tests/test_device_suite.py"),
    ),
    Mutation(
        "nearest-neighbour resize instead of bilinear",
        "nas/train/data.py",
        'mode="bilinear", align_corners=False',
        'mode="nearest"',
        ("tests/test_train_data.py",),
    ),
    Mutation(
        "top-1 counts the least likely class",
        "nas/train/evaluate.py",
        "logits.argmax(dim=-1)",
        "logits.argmin(dim=-1)",
        ("tests/test_train.py", "-k", "top1"),
    ),
    Mutation(
        "Note10 identity-skip flag inverted",
        "nas/blocks/mbconv.py",
        "-idskip:{int(layer.residual)}",
        "-idskip:{int(not layer.residual)}",
        ("tests/test_device_tables.py",),
    ),
    Mutation(
        "resume forgets the sampler state",
        "nas/train/trainer.py",
        'self.sampler.load_state_dict(payload["sampler"])',
        "pass",
        ("tests/test_train.py",),
    ),
    Mutation(
        "resume forgets the optimizer state",
        "nas/train/trainer.py",
        'self.optimizer.load_state_dict(payload["optimizer"])',
        "pass",
        ("tests/test_compat.py", "-k", "resumes"),
    ),
    Mutation(
        "resume forgets the sampler state (fixture of the previous version)",
        "nas/train/trainer.py",
        'self.sampler.load_state_dict(payload["sampler"])',
        "pass",
        ("tests/test_compat.py", "-k", "resumes"),
    ),
    Mutation(
        "stacked latency lookup's activity table as wide as the depths only",
        "predictors/positions.py",
        "max([1, dim_sizes[0], *depth_sizes])",
        "max([1, *depth_sizes])",
        ("tests/test_latency_predictor.py",),
    ),
    Mutation(
        "equal points dominate each other (Pareto front)",
        "nas/search/pareto.py",
        "np.any(points > points[i], axis=1)",
        "np.any(points >= points[i], axis=1)",
        ("tests/test_search.py",),
    ),
)


def _copy_repository(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def _apply_text(text: str, mutation: Mutation) -> str:
    if text.count(mutation.old) != 1:
        raise SystemExit(
            f"{mutation.name}: {mutation.path} holds {text.count(mutation.old)} copies of "
            f"{mutation.old!r}; the mutation needs exactly one (update MUTATIONS)"
        )
    return text.replace(mutation.old, mutation.new)


def _apply(copy: Path, mutation: Mutation) -> None:
    path = copy / mutation.path
    path.write_text(_apply_text(path.read_text(), mutation))


def _run_tests(copy: Path, tests: tuple[str, ...], log: Path) -> int:
    shared = os.environ.get("NAS_SHARED_DATA") or str(REPO.parent / "shared" / "data")
    env = {**os.environ, "PYTHONPATH": str(copy), "NAS_SHARED_DATA": shared}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    with log.open("w") as out:
        return subprocess.run(command, cwd=copy, env=env, stdout=out, stderr=out).returncode


def check(mutation: Mutation, logs: Path) -> tuple[str, float]:
    """'caught', 'MISSED', or why it could not be judged; and the seconds it took."""
    start = time.perf_counter()
    slug = "".join(c if c.isalnum() else "-" for c in mutation.name)
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        copy = Path(tmp)
        _copy_repository(copy)
        if _run_tests(copy, mutation.tests, logs / f"{slug}.unchanged.log") != 0:
            return f"n/a: the tests fail unchanged (see {slug}.unchanged.log)", 0.0
        _apply(copy, mutation)
        code = _run_tests(copy, mutation.tests, logs / f"{slug}.log")
    verdict = {0: "MISSED", 1: "caught"}.get(code, f"error (pytest exit {code})")
    return verdict, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run the mutations whose name contains this text")
    parser.add_argument("--list", action="store_true", help="list the mutations and stop")
    parser.add_argument(
        "--logs", default="runs/mutation_check", help="pytest output per mutation (folder)"
    )
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if not args.only or args.only in m.name]
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.path}: {m.old!r} -> {m.new!r}; tests {' '.join(m.tests)}")
        return
    for m in chosen:  # every mutation still applies, before minutes are spent on any
        _apply_text((REPO / m.path).read_text(), m)
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    rows = []
    for m in chosen:
        verdict, seconds = check(m, logs.resolve())
        rows.append((m.name, m.path, " ".join(m.tests), verdict, f"{seconds:.0f}"))
        print(" | ".join(rows[-1]), flush=True)
    print("\n| mutation | file | tests | result | s |\n|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    missed = [r for r in rows if r[3] == "MISSED"]
    print(f"\n{len(rows) - len(missed)} of {len(rows)} not missed; missed: {len(missed)}")


if __name__ == "__main__":
    main()
