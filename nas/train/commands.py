"""The ``nas train`` command. Importing this module does not import torch."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from nas.train.config import (
    AMP,
    DATA_FORMATS,
    DISTILL,
    LEVEL_METRICS,
    OPTIMIZERS,
    SAMPLERS,
    ConfigError,
    TrainConfig,
    read_config,
)

DESCRIPTION = """\
Train the weight-sharing supernet of a search space on an image classification data set.

Each step trains several subnets on one mini-batch and accumulates their gradients. With
distillation on, the largest subnet is trained first on the labels and the others learn from its
output. Samplers: uniform (the default); sandwich (largest + smallest + random); cas
(ElasticViT's complexity-aware sampling: the target complexity level moves by at most one level
per step); cas+pas (performance-aware sampling on top: per-level banks of subnets that score
well); fixed (one arch alone, a standalone baseline). Uniform sampling with in-place distillation
is the default because its supernet ranked subnets best in benchmarks/supernet_ranking.py
(README, "Does the supernet rank"); runs trained before with the former default resume with
--sampler cas+pas.

The run folder (--out) gets config.yaml (resolved options), levels.json (complexity levels and
candidate pools), last.pt (resumable checkpoint), best.pt (best evaluated weights, for `nas
extract --checkpoint`), metrics.jsonl (train records; per-epoch probe accuracies per level) and
final.json (per-level table on val and test). Kill the command at any moment and run it again
with the same options: it resumes from last.pt. With --workers N > 1 it trains data-parallel on
Ray Train (a local Ray instance, or a running cluster with --ray-address).
"""

CHOICES = {
    "data_format": DATA_FORMATS,
    "sampler": SAMPLERS,
    "level_metric": LEVEL_METRICS,
    "distill": DISTILL,
    "optimizer": OPTIMIZERS,
    "amp": AMP,
}

#: Help texts (and option groups) of every TrainConfig field.
HELP: dict[str, tuple[str, str]] = {
    "space": ("data", "built-in space name (see `nas spaces`) or space YAML path"),
    "data": ("data", "'digits' (embedded, scikit-learn) or a data set path"),
    "data_format": (
        "data",
        "auto, digits, idx (MNIST/Fashion-MNIST .gz), cifar10, cifar100, folder (one subfolder "
        "per class), npz (arrays x, y)",
    ),
    "train_limit": ("data", "keep at most N training images, a fixed stratified subset (0: all)"),
    "eval_limit": ("data", "keep at most N val and N test images (0: all)"),
    "epochs": ("training", "passes over the training images"),
    "batch_size": ("training", "images per step (over all workers)"),
    "sampler": ("sampling", f"subnet sampler: {', '.join(SAMPLERS)}"),
    "subnets": ("sampling", "subnets the sampler picks per step, besides the largest subnet"),
    "best_of": (
        "sampling",
        "AttentiveNAS best-up: each pick is the best of K candidates by mini-batch loss",
    ),
    "arch": ("sampling", "arch JSON file trained alone by --sampler fixed"),
    "levels": ("sampling", "complexity levels (CAS, PAS and the per-level probes)"),
    "level_metric": ("sampling", f"complexity of the levels: {', '.join(LEVEL_METRICS)}"),
    "device_profile": (
        "sampling",
        "target device for --level-metric latency: a device profile JSON (`nas device "
        "measure`/`import`/`import-table`), or a published table as it comes (Pixel 4 JSON "
        "table for elasticvit, folder of Note10 tables for ofa-mbv3)",
    ),
    "pool_draws": ("sampling", "archs drawn to fill the per-level candidate pools"),
    "pool_size": ("sampling", "candidates kept per level"),
    "bank_size": ("sampling", "PAS: (arch, score) entries kept per level"),
    "exploit_start": ("sampling", "PAS: probability of exploiting the bank at the start"),
    "exploit_end": ("sampling", "PAS: exploit probability at the end (linear in between)"),
    "rescore_every": ("sampling", "PAS: re-score a level's bank when older than N steps"),
    "explore_candidates": (
        "sampling",
        "PAS: candidates drawn on explore; the one spending most on width over depth is kept",
    ),
    "distill": ("loss", f"in-place distillation from the largest subnet: {', '.join(DISTILL)}"),
    "alpha_min": ("loss", "alpha-divergence: lower alpha"),
    "alpha_max": ("loss", "alpha-divergence: upper alpha"),
    "alpha_clip": ("loss", "alpha-divergence: clip of the importance ratio"),
    "label_smoothing": ("loss", "label smoothing of the cross-entropy on labels"),
    "optimizer": ("optimizer", f"{', '.join(OPTIMIZERS)}"),
    "lr": ("optimizer", "peak learning rate"),
    "min_lr": ("optimizer", "learning rate at the end of the cosine decay"),
    "weight_decay": ("optimizer", "weight decay (not on norms and biases)"),
    "momentum": ("optimizer", "SGD momentum (Nesterov)"),
    "warmup_steps": ("optimizer", "linear warm-up steps (-1: 5%% of all steps)"),
    "grad_clip": ("optimizer", "clip the gradient norm at this value (0: off)"),
    "ema_decay": (
        "optimizer",
        "keep an exponential moving average of the weights (0: off); evaluation and best.pt "
        "then use it",
    ),
    "device": ("run", "auto, cpu, cuda or cuda:N"),
    "amp": ("run", "mixed precision: auto (on with CUDA), on, off"),
    "seed": ("run", "seed of everything (init, data order, sampling)"),
    "checkpoint_every": ("run", "also write last.pt every N steps (0: at epoch ends only)"),
    "log_every": ("run", "steps between train records in metrics.jsonl (0: none)"),
    "probes_per_level": ("evaluation", "fixed probe archs per level evaluated each epoch"),
    "calib_images": ("evaluation", "training images for each subnet's BN recalibration"),
    "eval_batch_size": ("evaluation", "batch size of evaluation and BN recalibration"),
    "workers": ("run", "data-parallel workers on Ray Train (1: this process only)"),
    "threads": ("run", "torch CPU threads per process (0: torch's default)"),
}


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``nas train`` to the ``nas`` command's subparsers."""
    p = subparsers.add_parser(
        "train",
        help="train a supernet (uniform, sandwich, CAS, CAS+PAS sampling); resumable",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="run folder (created; rerun to resume)")
    p.add_argument(
        "--config",
        help="YAML file of options (e.g. a run's config.yaml); options given here override it",
    )
    p.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="stop after N optimizer steps in all (checkpointed); rerun without it to go on",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--ray-address",
        metavar="HOST:PORT",
        help="with --workers N > 1: train on the running Ray cluster at this address (its head "
        "node, or auto) instead of a local Ray instance; it needs a CPU per worker, and the run "
        "folder must be on storage every machine of the cluster shares (default: $RAY_ADDRESS, "
        "else a local instance)",
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        group_name, text = HELP[f.name]
        group = groups.get(group_name) or groups.setdefault(
            group_name, p.add_argument_group(f"{group_name} options")
        )
        default = getattr(defaults, f.name)
        kind = {int: int, float: float}.get(type(default), str)
        choices = CHOICES.get(f.name)
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=kind,
            default=argparse.SUPPRESS,
            choices=choices,
            metavar="{" + ",".join(choices) + "}" if choices else kind.__name__.upper(),
            help=f"{text} (default: {default})",
        )
    p.set_defaults(func=cmd_train)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then the --config file, then the options given on the command line."""
    values = TrainConfig().to_dict()
    if getattr(args, "config", None):
        values.update(read_config(Path(args.config)).to_dict())
    for f in fields(TrainConfig):
        if f.name in args:
            values[f.name] = getattr(args, f.name)
    return TrainConfig.from_dict(values).check()


def cmd_train(args: argparse.Namespace) -> None:
    config = config_from_args(args)
    if args.max_steps is not None and args.max_steps < 1:
        raise ConfigError(f"--max-steps {args.max_steps} must be at least 1")
    if args.ray_address and config.workers == 1:
        raise ConfigError("--ray-address needs --workers N > 1 (the Ray Train workers it runs)")
    out = Path(args.out)
    if config.workers > 1:
        from nas.distributed import train_distributed

        result = train_distributed(config, out, max_steps=args.max_steps, address=args.ray_address)
    else:
        from nas.train.trainer import Trainer

        trainer = Trainer(config, out, progress=not args.no_progress)
        if not args.no_progress:
            print(f"{trainer.data.describe()}; {trainer.total_steps} steps", file=sys.stderr)
        try:
            result = trainer.run(args.max_steps)
        except KeyboardInterrupt:
            print(
                f"\ninterrupted; rerun the same command to resume from {out / 'last.pt'}",
                file=sys.stderr,
            )
            raise SystemExit(130) from None
    from nas.train.trainer import format_final_table

    if not result.finished:
        print(f"stopped at step {result.step}/{result.total_steps}; rerun to resume ({out})")
        return
    if result.final:
        print(format_final_table(result.final))
    print(f"run folder: {out} (best.pt, last.pt, metrics.jsonl, final.json)")
