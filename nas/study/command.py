"""The ``nas study`` command."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Study a search space's trade-offs: how latency on each device, MACs, parameters and (with --run)
accuracy move with each decision, where MACs misorder archs by latency, how far devices disagree,
where the time goes, and the accuracy-latency fronts. Rerun the same command to resume.

Outputs in --out DIR:
  report.html    the report, one self-contained file (figures embedded): a plain-language summary,
                 then per-decision effects and importances, where FLOPs mislead, devices
                 disagree, where the time goes, fronts, and the archs and settings used
  report.md      the same report in Markdown, figures as the PNG files beside it
  study.json     every number of the report (format nas-study, version 1)
  archs.jsonl    one line per studied arch: id, origin (sample, smallest, largest, run), whether
                 it is a base of the paired effects, the arch, its decisions (inactive per-layer
                 ones included), MACs, parameters, latency per device and, with --run, validation
                 top-1 with "accuracy": measured or predicted
  effects_costs.png, effects_accuracy.png   one panel per decision: change when only it changes
  importance.png       the most important decisions per objective
  flops_vs_latency.png latency against MACs per device, coloured by block/attention kind
  devices.png          latency on one device against another, with each device's front
  breakdown_*.png      predicted latency of chosen archs by stage and kernel kind, per device
  fronts.png           score against normalised latency on every device, and the joint front
  parts/               intermediate results a rerun reuses
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "study",
        help="trade-off study of a space: per-decision effects, FLOPs vs latency, devices",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--space", required=True, help="built-in space name or path to a space YAML")
    p.add_argument(
        "--device",
        action="append",
        metavar="PROFILE",
        required=True,
        help="device profile JSON of the space (measured, imported or a published table); repeat "
        "for several devices. Its file name (without .json) labels it in the report",
    )
    p.add_argument(
        "--run",
        help="training run of the space: adds validation accuracy, measured on the supernet for "
        "some archs (kept in the run's accuracy cache) and predicted for the others",
    )
    p.add_argument(
        "--n",
        type=int,
        default=2000,
        help="archs to sample, stratified over the MACs range (default 2000); the smallest and "
        "largest archs and every arch searches of --run evaluated are added",
    )
    p.add_argument(
        "--pairs",
        type=int,
        default=400,
        help="base archs of the paired per-decision effects (default 400)",
    )
    p.add_argument(
        "--measure",
        type=int,
        default=40,
        help="with --run: sampled archs, spread over the MACs range, to measure on the supernet "
        "(those in the run's accuracy cache are not measured again; archs the run measured "
        "before are used too) (default 40)",
    )
    p.add_argument(
        "--accuracy-predictor",
        default="gbm",
        help="with --run: accuracy predictor for the unmeasured archs: mlp, gbm or ridge "
        "(default gbm)",
    )
    p.add_argument(
        "--importance",
        default="ped-anova",
        help="Optuna importance evaluator: ped-anova (what matters to be among the best 10%%, "
        "per-layer decisions included) or fanova (share of variance) (default ped-anova)",
    )
    p.add_argument(
        "--importance-archs",
        type=int,
        default=1000,
        help="sampled archs the importance evaluator sees (default 1000)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--torch-device", default="cpu", help="with --run: cpu or cuda (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_study)


def cmd_study(args: argparse.Namespace) -> None:
    from nas.study import StudySettings, run_study

    written = run_study(
        StudySettings(
            space=args.space,
            devices=args.device,
            out=Path(args.out),
            n=args.n,
            run=args.run,
            seed=args.seed,
            pairs=args.pairs,
            measure=args.measure,
            accuracy_predictor=args.accuracy_predictor,
            importance=args.importance,
            importance_archs=args.importance_archs,
            progress=not args.no_progress,
            torch_device=args.torch_device,
        )
    )
    print(f"report: {written['html']}")
    print(f"        {written['markdown']}")
    print(f"data:   {written['json']}, {written['archs']}")
