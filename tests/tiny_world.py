"""A tiny world made with the `nas` command, as a user makes it: a space file, a trained run, device
profiles, a search and sampled archs. Built once per test session (see ``conftest.tiny_world``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from cli_runner import CliRunner

#: Training of a few steps on 160 digits (grey: the supernet gets one input channel).
TRAIN = (
    "train --space tiny.yaml --data digits --epochs 1 --train-limit 160 --eval-limit 40 "
    "--batch-size 32 --calib-images 32 --levels 2 --pool-draws 20 --pool-size 5 "
    "--sampler uniform --threads 1 --no-progress --seed 0 --out run"
)
#: A quick profile: torch eager, one pass, two whole models.
MEASURE = (
    "device measure --backend torch --space {space} --warmup 1 --repeats 3 --passes 1 "
    "--models 2 --min-time-ms 1 --min-span-ms 0 --device {device} --out {out}"
)
SEARCH = (
    "search --run run --device a.json --latency-ms 1000 --evaluations 8 --batch-size 4 "
    "--name base --seed 0"
)


@dataclass(frozen=True)
class World:
    root: Path
    space: Path  # tiny.yaml, the conftest tiny space (3 input channels, 4 classes)
    other_space: Path  # other.yaml, the same layers under another name
    run: Path  # trained on digits, with one search ("base") under device A
    profile_a: Path  # device "A" (torch, tiny.yaml)
    profile_b: Path  # device "B" (torch, tiny.yaml)
    profile_other: Path  # device "A" for other.yaml
    samples: Path  # three `nas sample` lines of tiny.yaml


def build(root: Path, space: dict) -> World:
    """Make the world in ``root`` with the `nas` command."""
    (root / "tiny.yaml").write_text(yaml.safe_dump(space))
    (root / "other.yaml").write_text(yaml.safe_dump({**space, "name": "tiny-other"}))
    runner = CliRunner()
    try:
        commands = [
            TRAIN,
            MEASURE.format(space="tiny.yaml", device="A", out="a.json"),
            MEASURE.format(space="tiny.yaml", device="B", out="b.json"),
            # no whole models: nothing in it but its declaration names the other space
            MEASURE.format(space="other.yaml", device="A", out="other.json") + " --models 0",
            SEARCH,
        ]
        for command in commands:
            result = runner.run(command.split(), root)
            assert result.code == 0, f"nas {command}\n{result.err}"
        sample = runner.run(["sample", "--space", "tiny.yaml", "-n", "3", "--seed", "0"], root)
        assert sample.code == 0, sample.err
        (root / "samples.jsonl").write_text(sample.out)
    finally:
        runner.close()
    return World(
        root,
        root / "tiny.yaml",
        root / "other.yaml",
        root / "run",
        root / "a.json",
        root / "b.json",
        root / "other.json",
        root / "samples.jsonl",
    )
