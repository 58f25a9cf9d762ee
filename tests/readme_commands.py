"""The README's commands, as the README test and the command tests run them.

Every line of a ``sh`` code block of README.md that starts with ``nas`` or ``make`` is a command
to run. The commands run in the order of the README, in one fresh folder (holding a ``runs/``
folder, as the repository does), with the substitutions of :data:`SUBSTITUTIONS`: they only make
the runs small (fewer epochs, images, repeats, evaluations, subnets) or point at what this
machine has (the shared data folder, a latency budget this machine can meet). A README command
that no longer works, or no longer writes what the README says, fails the test.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REPO_ROOT, in_ci, nas_executable, shared_data_folder

README = REPO_ROOT / "README.md"

#: ``nas train`` at a size that runs in seconds: one epoch on 256 digits, three complexity levels.
SMALL_TRAINING = (
    "--train-limit 256 --eval-limit 100 --batch-size 32 --calib-images 64 "
    "--levels 3 --pool-draws 60 --pool-size 10"
)
#: Device timing with few runs of a sample of the kernel configurations (the others predicted by
#: the per-kind regressors): the profile's structure is what is checked, not its figures.
SMALL_TIMING = (
    "--warmup 1 --repeats 3 --passes 1 --min-time-ms 0 --min-span-ms 0 --models 4 "
    "--max-exact 0 --prior-per-kind 3 --adaptive-rounds 1 --adaptive-batch 8"
)
#: Searched archs (and archs per search step).
SMALL_SEARCH = "--evaluations 12 --batch-size 6"
#: Archs a study samples, pairs per decision, archs measured on the supernet and for importances.
SMALL_STUDY = "--n 24 --pairs 3 --measure 6 --importance-archs 16"
#: Placeholders of :data:`SUBSTITUTIONS`, filled in when a command runs.
PLACEHOLDERS = ("{shared}", "{budget}", "{venv}", "{repo}")

#: (README text, what the test runs instead, why). Patterns are regular expressions applied in
#: order to each command; ``{shared}``, ``{budget}``, ``{venv}`` and ``{repo}`` are filled in when
#: the command runs.
SUBSTITUTIONS: list[tuple[str, str, str]] = [
    (r"--epochs \d+", f"--epochs 1 {SMALL_TRAINING}", "one epoch on a subset of the data"),
    (r"^(nas device measure .*)", rf"\1 {SMALL_TIMING}", "few timing runs, a sample of kernels"),
    (r"^(nas study (?!--help).*)", rf"\1 {SMALL_STUDY}", "24 archs studied, few measured"),
    (r"^(nas device time-suite .*)", r"\1 --repeats 3", "few timing runs"),
    (r"^(nas device export-suite .*)", r"\1 --models 4", "4 whole models, not 12"),
    (r"--n 100\b", "--n 3", "3 subnets validated, not 100"),
    (r"--evaluations \d+", SMALL_SEARCH, "12 searched archs, not 500"),
    (
        r"--accuracy (\w+)",
        r"--accuracy \1 --warmup 6 --refit-every 4 --evaluations 24 --batch-size 6",
        "the predictor learns from 6 measured archs, not 50; the search resumes the one above "
        "(the same default folder) and goes on to 24 archs",
    ),
    (r"^(nas search (?!.*--evaluations).*)", rf"\1 {SMALL_SEARCH}", "12 searched archs, not 500"),
    (
        r"--latency-ms 0\.5\b",
        "--latency-ms {budget}",
        "0.5 ms is one machine's figure: a budget 60% of random archs meet on this machine's profile",
    ),
    (r"\.\./shared/data", "{shared}", "the shared data folder, wherever it is"),
    (
        r"^make demo$",
        "make -f {repo}/Makefile -o {venv}/.installed VENV={venv} demo",
        "the quick demo (NAS_DEMO_QUICK=1) into this folder's runs/demo, with this environment",
    ),
    (
        r"^make (test|test-all|format|clean)$",
        r"make -C {repo} -o {venv}/.installed VENV={venv} -n \1",
        "printed, not run: the suite itself; format and clean change the repository",
    ),
    (r"^make lint$", "make -C {repo} -o {venv}/.installed VENV={venv} lint", "this environment"),
]

#: Shell words of README commands: redirection and pipes.
SHELL_WORDS = {">", "|"}


def redirect_target(command: str) -> str | None:
    """The file a README command's output is redirected to (``> FILE``), if any."""
    words = shlex.split(command, comments=True)
    return words[words.index(">") + 1] if ">" in words else None


#: Commands the README lists before one they need: (command prefix, runs after this prefix).
RUN_AFTER = {"nas device import suite/": "nas device time-suite"}

#: Environment of every command: no progress bars in captured output; the quick demo.
ENVIRONMENT = {"TQDM_DISABLE": "1", "NAS_DEMO_QUICK": "1"}


#: Commands that read nothing another README command writes: ``make`` commands, and trainings
#: (they read a data set and write their own run folder). Run alone, on demand.
SELF_CONTAINED = (r"^make ", r"^nas train ")


def self_contained(command: str) -> bool:
    """Whether ``command`` (as the README has it) needs no earlier README command."""
    return any(re.match(pattern, command) for pattern in SELF_CONTAINED)


def _needed_by(earlier: str, commands: list[str]) -> bool:
    """Whether ``earlier`` must run before the last of ``commands`` (README order): always, unless
    it is self-contained and none of the commands after it names the folder it writes."""
    if earlier.startswith("make "):
        return False
    if not self_contained(earlier):
        return True
    words = shlex.split(earlier)
    out = words[words.index("--out") + 1] if "--out" in words else None
    after = commands[commands.index(earlier) + 1 :]
    return out is None or any(out in command for command in after)


def readme_commands(text: str | None = None) -> list[str]:
    """Every ``nas ...`` and ``make ...`` line of the README's ``sh`` blocks, comments removed,
    each once, in README order."""
    text = README.read_text() if text is None else text
    commands: list[str] = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():  # continued lines joined
            words = shlex.split(line, comments=True)
            if words and words[0] in ("nas", "make"):
                command = shlex.join(words)
                if command not in commands:
                    commands.append(command)
    return _reordered(commands)


def _reordered(commands: list[str]) -> list[str]:
    ordered = list(commands)
    for prefix, after in RUN_AFTER.items():
        first = next((c for c in ordered if c.startswith(prefix)), None)
        anchor = next((c for c in ordered if c.startswith(after)), None)
        if first and anchor and ordered.index(first) < ordered.index(anchor):
            ordered.remove(first)
            ordered.insert(ordered.index(anchor) + 1, first)
    return ordered


def substitute(command: str) -> str:
    """``command`` as the test runs it (placeholders not yet filled in)."""
    for pattern, replacement, _ in SUBSTITUTIONS:
        command = re.sub(pattern, replacement, command)
    return command


@dataclass
class Outcome:
    readme: str  # the command as the README has it
    argv: list[str]  # as run
    returncode: int
    stdout: str
    stderr: str
    missing: str | None = None  # why it could not run here (shared data absent)

    def explain(self) -> str:
        return (
            f"README command `{self.readme}`\nran as `{shlex.join(self.argv)}`\n"
            f"exit code {self.returncode}\nstdout:\n{self.stdout[-3000:]}\n"
            f"stderr:\n{self.stderr[-3000:]}"
        )


@dataclass
class ReadmeFlow:
    """The README's commands run one after another in ``root``, each once, on demand."""

    root: Path
    commands: list[str] = field(default_factory=readme_commands)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    current: str = ""  # the command whose outcome is checked
    _budget: float | None = None

    def __post_init__(self):
        (self.root / "runs").mkdir(parents=True, exist_ok=True)

    def path(self, relative: str) -> Path:
        return self.root / relative

    def find(self, prefix: str) -> str:
        """The README command starting with ``prefix``."""
        found = [c for c in self.commands if c.startswith(prefix)]
        assert found, f"the README has no command starting with {prefix!r}"
        return found[0]

    def run(self, command: str) -> Outcome:
        """Run the README's ``nas`` commands up to ``command`` (each once; a
        :func:`self_contained` command alone) and return its outcome.

        A command that needs the shared data, absent here, is skipped with the reason (fails
        in CI)."""
        needed = self.commands[: self.commands.index(command) + 1]
        if self_contained(command):
            needed = [command]
        for earlier in needed:
            if earlier not in self.outcomes and _needed_by(earlier, needed):
                self.outcomes[earlier] = self._execute(earlier)
        if command not in self.outcomes:
            self.outcomes[command] = self._execute(command)
        outcome = self.outcomes[command]
        self.current = command
        if outcome.missing:
            if in_ci():
                pytest.fail(f"{outcome.missing} (CI=true: fails instead of skipping)")
            pytest.skip(outcome.missing)
        return outcome

    def run_ok(self, prefix: str) -> Outcome:
        """The outcome of the README command starting with ``prefix``, which must succeed."""
        outcome = self.run(self.find(prefix))
        assert outcome.returncode == 0, outcome.explain()
        return outcome

    def budget(self) -> float:
        """A latency budget (ms) that 60% of 50 random archs meet on ``runs/ort.json``."""
        if self._budget is None:
            import numpy as np

            import search_spaces
            from predictors.latency import LatencyPredictor

            self.run_ok("nas device measure --backend onnxruntime --space hybrid-tiny --out")
            space = search_spaces.get("hybrid-tiny")
            predictor = LatencyPredictor.load(self.path("runs/ort.json"), space)
            latency = predictor.predict([space.sample(seed) for seed in range(50)])
            self._budget = round(float(np.percentile(latency, 60)), 4)
        return self._budget

    def _execute(self, command: str) -> Outcome:
        text = substitute(command)
        if "{shared}" in text:
            shared = shared_data_folder()
            if not shared.is_dir():
                missing = f"`{command}` needs the shared data folder, not found at {shared}"
                return Outcome(command, [], -1, "", "", missing)
            text = text.replace("{shared}", str(shared))
        if "{budget}" in text:
            text = text.replace("{budget}", f"{self.budget():g}")
        venv = Path(sys.executable).parent.parent
        text = text.replace("{venv}", str(venv)).replace("{repo}", str(REPO_ROOT))
        argv = shlex.split(text)
        if argv[0] == "nas" and _nas_pipeline(argv):  # in processes forked with the engine imported
            return self._pipeline(command, argv)
        if SHELL_WORDS & set(argv):  # another shell form: run as a shell runs it
            nas = str(nas_executable())
            words = [nas if w == "nas" and (k == 0 or argv[k - 1] == "|") else w
                     for k, w in enumerate(argv)]  # fmt: skip
            shell = " ".join(w if w in SHELL_WORDS else shlex.quote(w) for w in words)
            argv = ["bash", "-o", "pipefail", "-c", shell]
        done = subprocess.run(
            argv,
            cwd=self.root,
            capture_output=True,
            text=True,
            env={**os.environ, **ENVIRONMENT},
            timeout=900,
        )
        return Outcome(command, argv, done.returncode, done.stdout, done.stderr)

    def _pipeline(self, command: str, argv: list[str]) -> Outcome:
        """``nas A [| nas B ...] [> FILE]`` as ``bash -o pipefail`` runs it: each command's
        standard output is the next one's input (or the file), the exit code the last nonzero
        one; each command in a process forked from the shared command server."""
        from cli_runner import shared_runner

        target = redirect_target(shlex.join(argv))
        words = argv[: argv.index(">")] if target else argv
        stages: list[list[str]] = [[]]
        for word in words:
            if word == "|":
                stages.append([])
            else:
                stages[-1].append(word)
        stdin, code, out, err = None, 0, "", ""
        with tempfile.TemporaryDirectory() as pipes:
            for k, stage in enumerate(stages):
                result = shared_runner().run(
                    stage[1:], self.root, stdin=stdin, env=ENVIRONMENT, timeout=900
                )
                code = (-9 if result.code is None else result.code) or code
                out, err = result.out, err + result.err
                stdin = Path(pipes) / f"{k}.txt"
                stdin.write_text(out)
        if target:
            (self.root / target).write_text(out)
            out = ""
        return Outcome(command, argv, code, out, err)


def _nas_pipeline(argv: list[str]) -> bool:
    """Whether ``argv`` is ``nas ...`` commands joined by pipes, optionally redirected to a file
    at the end, and nothing else of the shell."""
    if ">" in argv and argv.index(">") != len(argv) - 2:
        return False
    words = argv[: argv.index(">")] if ">" in argv else argv
    return all(words[k + 1 : k + 2] == ["nas"] for k, w in enumerate(words) if w == "|")
