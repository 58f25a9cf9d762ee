"""Supernet training: sampled subnets per step, in-place distillation, EMA, checkpoint and resume.

Each optimizer step trains several subnets on one mini-batch and accumulates their gradients:
the largest arch first (when distilling, or by the sandwich rule) on the labels, then the
sampler's subnets, each on the largest arch's soft output (KL or AlphaNet's alpha-divergence)
or on the labels. Gradients are clipped, then AdamW or SGD steps with a warm-up + cosine
learning rate.

A run lives in a folder: ``config.yaml`` (the resolved options), ``levels.json`` (complexity
levels and candidate pools), ``last.pt`` (everything needed to resume, written atomically at step
boundaries), ``best.pt`` (the weights evaluated best so far), ``metrics.jsonl`` and
``final.json``. Running the same options again resumes from ``last.pt``; on CPU the resumed run
ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from nas.arch import Arch, ArchError
from nas.errors import InputError
from nas.runs import append_text, check_folder, make_folder, write_atomic
from nas.space import SearchSpace, SpaceError
from nas.supernet import Supernet
from nas.supernet.checkpoint import CheckpointError, read_checkpoint, save_supernet
from nas.train.config import CONFIG_FILE, ConfigError, TrainConfig, read_config, write_config
from nas.train.data import DataSet, load_data, resize, train_batches
from nas.train.evaluate import (
    Probe,
    batch_norms,
    calibration_images,
    evaluate_archs,
    evaluation_copy,
    make_probes,
)
from nas.train.levels import (
    Levels,
    build_levels,
    complexity_function,
    load_or_build_levels,
)
from nas.train.losses import adaptive_alpha_divergence, kl_distillation
from nas.train.samplers import PasSettings, Sampler, make_sampler

LAST, BEST, METRICS, FINAL, LEVELS = (
    "last.pt",
    "best.pt",
    "metrics.jsonl",
    "final.json",
    "levels.json",
)


#: Training stops when this many steps in a row have a non-finite loss or gradient.
MAX_NONFINITE_STEPS = 3
#: The loss a non-finite loss counts as when subnets are ranked by it.
NONFINITE_LOSS = 1e9
#: What a checkpoint needs to resume a run.
RESUME_KEYS = ("config", "model", "optimizer", "scaler", "sampler", "rng", "step", "best")


class TrainingDivergedError(InputError):
    """The loss or the weights stopped being finite: the options (learning rate, clipping) need
    to change."""


@dataclass
class RunResult:
    """What a call to :meth:`Trainer.run` ended with."""

    step: int
    total_steps: int
    finished: bool
    final: dict[str, Any] | None = None
    losses: list[float] = field(default_factory=list)


class Trainer:
    """One training process (worker ``rank`` of ``world`` for data-parallel runs).

    ``out`` is the run folder (None: nothing is written, nothing resumed). ``space`` and ``data``
    may be given directly (tests, benchmarks); otherwise they come from the config.
    """

    def __init__(
        self,
        config: TrainConfig,
        out: str | Path | None,
        *,
        space: SearchSpace | None = None,
        data: DataSet | None = None,
        rank: int = 0,
        world: int = 1,
        progress: bool = True,
        log: Callable[[str], None] | None = None,
    ):
        config = config.check().resolved(torch.cuda.is_available())
        self.config, self.rank, self.world = config, rank, world
        self.out = Path(out) if out is not None else None
        if self.out is not None:
            check_folder(self.out)
        self.writer = self.out is not None and rank == 0
        self.progress = progress and rank == 0
        self._log = log or (lambda text: print(text, file=sys.stderr))
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = torch.device(config.device)

        base = space if space is not None else _space(config.space)
        if data is None:
            data = load_data(
                config.data,
                config.data_format,
                image_size=max(base.resolutions),
                train_limit=config.train_limit,
                eval_limit=config.eval_limit,
            )
        self.data = data
        self.declared_space = base
        self.space = base.with_task(num_classes=data.num_classes, in_channels=data.in_channels)
        self.steps_per_epoch = len(data.train) // config.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"--batch-size {config.batch_size} exceeds the {len(data.train)} training images"
            )
        self.total_steps = config.epochs * self.steps_per_epoch
        self.warmup = config.warmup_for(self.total_steps)
        self.derived = {
            "space": self.space.name,
            "data": data.describe(),
            "num_classes": data.num_classes,
            "in_channels": data.in_channels,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup,
            "preprocessing": data.preprocessing.to_dict() if data.preprocessing else None,
        }
        fixed = _load_arch(config.arch, self.space) if config.arch else None
        last = None
        if self.out is not None and (self.out / LAST).is_file():
            last = self._resumable(self.out / LAST)

        _seed_everything(config.seed)
        self.supernet = Supernet(self.space).to(self.device)
        self.max_arch = self.space.max_arch()
        self.optimizer = _optimizer(self.supernet, config)
        self.use_amp = config.amp == "on"
        self.amp_dtype = (
            torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16
        )
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.use_amp and self.amp_dtype == torch.float16
        )
        self.ema: dict[str, torch.Tensor] | None = None
        if config.ema_decay > 0:
            self.ema = {k: v.detach().clone() for k, v in self.supernet.state_dict().items()}

        self.complexity = complexity_function(
            self.space, config.level_metric, config.device_profile, base
        )
        if self.out is not None:  # every input is checked: the run folder may be written
            self._prepare_folder()
        self.levels = self._levels()
        self.probes: list[Probe] = make_probes(self.levels, config.probes_per_level, config.seed)
        self.calibration = calibration_images(data.train, config.calib_images)
        self.sampler = self._sampler(fixed)
        if config.sampler == "fixed":  # a standalone run is evaluated on its own arch only
            arch = self.sampler.arch
            value = self.complexity(arch)
            self.probes = [Probe(self.levels.level_of(value) or 0, arch, value)]
        self.trains_max = config.sampler != "fixed" and (
            config.distill != "none" or self.sampler.trains_max
        )
        self.step = 0
        self.skipped = 0  # steps whose loss or gradient was not finite (no update)
        self.nonfinite_in_a_row = 0
        #: Subnet forward passes so far: trained (forward and backward) and scored only (PAS,
        #: best-of-k), so samplers can be compared at equal compute.
        self.passes = {"trained": 0, "scored": 0}
        self.best = {"metric": -1.0, "step": -1}
        self.resumed_from: int | None = None
        if last is not None:
            self._resume(last, self.out / LAST)
        elif self.writer:  # records of an attempt killed before its first checkpoint
            _truncate_metrics(self.out / METRICS, 0)

    def _levels(self) -> Levels:
        """The run's complexity levels, from the run folder's cache when it matches."""
        c = self.config
        key = {
            "space": self.space.to_dict(),
            "metric": c.level_metric,
            "device_profile": c.device_profile,
            "levels": c.levels,
            "draws": c.pool_draws,
            "pool_size": c.pool_size,
            "seed": c.seed,
        }
        key = json.loads(json.dumps(key))  # as it reads back from the cache file

        def build() -> Levels:
            return build_levels(
                self.space,
                self.complexity,
                count=c.levels,
                draws=c.pool_draws,
                pool_size=c.pool_size,
                seed=c.seed,
                metric=c.level_metric,
            )

        return load_or_build_levels(self.out / LEVELS if self.writer else None, key, build)

    def _sampler(self, fixed: Arch | None) -> Sampler:
        c = self.config
        return make_sampler(
            c.sampler,
            self.space,
            c.seed,
            subnets=c.subnets,
            best_of=c.best_of,
            levels=self.levels,
            complexity=self.complexity,
            pas=PasSettings(
                bank_size=c.bank_size,
                exploit_start=c.exploit_start,
                exploit_end=c.exploit_end,
                rescore_every=c.rescore_every,
                explore_candidates=c.explore_candidates,
            ),
            arch=fixed,
        )

    # ----------------------------------------------------------------- folder

    def _prepare_folder(self) -> None:
        assert self.out is not None
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"--out {self.out} exists and is not a folder")
        config_path = self.out / CONFIG_FILE
        if config_path.is_file():
            previous = read_config(config_path)
            diff = previous.differences(self.config)
            if diff:
                raise ConfigError(
                    f"{self.out} holds a run with other options ({'; '.join(diff)}); "
                    "rerun with the same options to resume, or choose another --out"
                )
        if self.writer:
            make_folder(self.out)
            write_config(config_path, self.config, self.derived)

    def _resumable(self, path: Path) -> dict[str, Any]:
        """The payload of the run's last checkpoint, checked: a training checkpoint of this
        space written with these options."""
        payload = read_checkpoint(path)
        kind = payload.get("kind")
        missing = [k for k in RESUME_KEYS if k not in payload]
        if kind != "train" or missing:
            raise CheckpointError(
                f"{path} is not a resumable training checkpoint (it is a {kind or 'supernet'} "
                f"checkpoint{', lacking ' + ', '.join(missing) if missing else ''}); put this "
                "run's last.pt back, or train into a new --out"
            )
        stored = _checkpoint_space(payload, path)
        if stored != self.space:
            raise CheckpointError(
                f"{path} holds a supernet of space {stored.name!r} ({_task(stored)}), not of "
                f"this run's space {self.space.name!r} ({_task(self.space)}); put this run's "
                "last.pt back, or train into a new --out"
            )
        try:
            saved = TrainConfig.from_dict(payload["config"])
        except (ConfigError, TypeError) as err:
            raise CheckpointError(f"{path}: its options are not readable ({err})") from None
        diff = saved.differences(self.config)
        if diff:
            raise ConfigError(f"{path} was written with other options ({'; '.join(diff)})")
        return payload

    def _resume(self, payload: dict[str, Any], path: Path) -> None:
        """Continue from a checkpoint checked by :meth:`_resumable`."""
        try:
            self.supernet.load_state_dict(payload["model"])
            self.optimizer.load_state_dict(payload["optimizer"])
            self.scaler.load_state_dict(payload["scaler"])
            if self.ema is not None:
                self.ema = {k: v.to(self.device) for k, v in payload["ema"].items()}
            self.sampler.load_state_dict(payload["sampler"])
            _set_rng_states(payload["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            raise CheckpointError(
                f"{path} does not fit this run ({type(err).__name__}); put this run's last.pt "
                "back, or train into a new --out"
            ) from None
        self.step = int(payload["step"])
        self.passes = {k: int(v) for k, v in payload.get("passes", self.passes).items()}
        self.best = dict(payload["best"])
        nonfinite = payload.get("nonfinite", {})
        self.skipped = int(nonfinite.get("skipped", 0))
        self.nonfinite_in_a_row = int(nonfinite.get("in_a_row", 0))
        self.resumed_from = self.step
        if self.writer:
            _truncate_metrics(self.out / METRICS, self.step)

    def save_checkpoint(self) -> None:
        if not self.writer:
            return
        self._require_finite_weights()
        save_supernet(
            self.supernet,
            self.out / LAST,
            declared_space=self.declared_space.to_dict(),
            nonfinite={"skipped": self.skipped, "in_a_row": self.nonfinite_in_a_row},
            kind="train",
            step=self.step,
            epoch=self.step // self.steps_per_epoch,
            total_steps=self.total_steps,
            config=self.config.to_dict(),
            optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict(),
            ema=None if self.ema is None else {k: v.cpu() for k, v in self.ema.items()},
            sampler=self.sampler.state_dict(),
            rng=_rng_states(),
            best=self.best,
            passes=self.passes,
        )

    def _record(self, record: dict[str, Any]) -> None:
        if self.writer:
            plain = {
                k: None if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in record.items()
            }
            append_text(self.out / METRICS, json.dumps(plain) + "\n", sync=False)

    # ----------------------------------------------------------------- training

    def lr_at(self, step: int) -> float:
        """Linear warm-up to ``lr``, then cosine decay to ``min_lr`` at the last step."""
        c = self.config
        if step < self.warmup:
            return c.lr * (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.total_steps - self.warmup)
        return c.min_lr + (c.lr - c.min_lr) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def _forward(self, arch: Arch, x: torch.Tensor) -> torch.Tensor:
        self.supernet.set_arch(arch)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            return self.supernet(resize(x, arch.resolution)).float()

    @torch.no_grad()
    def score(self, archs: Sequence[Arch], x: torch.Tensor, y: torch.Tensor) -> list[float]:
        """Minus the cross-entropy of each arch on a mini-batch (batch statistics; the running
        statistics are left as they were). Averaged over workers."""
        self.passes["scored"] += len(archs)
        saved = _bn_statistics(self.supernet)
        try:
            losses = torch.tensor(
                [float(F.cross_entropy(self._forward(a, x), y)) for a in archs], dtype=torch.float64
            )
        finally:
            _restore_bn_statistics(self.supernet, saved)
        # a batch with a non-finite loss ranks every arch last, alike (the step will be skipped)
        losses = torch.nan_to_num(losses, nan=NONFINITE_LOSS, posinf=NONFINITE_LOSS)
        return (-self._mean_over_workers(losses)).tolist()

    def _mean_over_workers(self, values: torch.Tensor) -> torch.Tensor:
        if self.world == 1:
            return values
        import torch.distributed as dist

        values = values.to(self._comm_device())
        dist.all_reduce(values)
        return (values / self.world).cpu()

    def _comm_device(self) -> torch.device:
        import torch.distributed as dist

        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def _all_reduce_grads(self) -> None:
        import torch.distributed as dist

        # Every worker trained the same subnets, so the same parameters have gradients.
        params = [p for p in self.supernet.parameters() if p.grad is not None]
        flat = torch.cat([p.grad.reshape(-1) for p in params]).to(self._comm_device())
        dist.all_reduce(flat)
        flat = (flat / self.world).to(self.device)
        offset = 0
        for p in params:
            n = p.grad.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
            offset += n

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        """One optimizer step on the mini-batch (x, y); returns what it trained and the loss."""
        c = self.config
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        self.supernet.train()
        students = self.sampler.sample(
            self.step, self.total_steps, lambda archs: self.score(archs, x, y)
        )
        plan = ([self.max_arch] if self.trains_max else []) + list(students)
        statistics = _bn_statistics(self.supernet)  # restored if the step is skipped
        self.optimizer.zero_grad(set_to_none=True)
        teacher = None
        total = 0.0
        student_losses = []
        for k, arch in enumerate(plan):
            logits = self._forward(arch, x)
            is_teacher = self.trains_max and k == 0
            if is_teacher or teacher is None or c.distill == "none":
                loss = F.cross_entropy(logits, y, label_smoothing=c.label_smoothing)
            elif c.distill == "kl":
                loss = kl_distillation(logits, teacher)
            else:
                loss = adaptive_alpha_divergence(
                    logits, teacher, c.alpha_min, c.alpha_max, c.alpha_clip
                )
            if is_teacher and c.distill != "none":
                teacher = logits.detach()
            self.scaler.scale(loss).backward()
            total += float(loss.detach())
            if not is_teacher:
                student_losses.append(float(F.cross_entropy(logits.detach(), y)))
        if self.world > 1:
            self._all_reduce_grads()
        self.scaler.unscale_(self.optimizer)
        lr = self.lr_at(self.step)
        grad_norm = None
        if not self._finite_step(total):
            # Nothing is learnt from this batch: a non-finite gradient never reaches the weights,
            # nor non-finite activations the BatchNorm statistics.
            self.optimizer.zero_grad(set_to_none=True)
            _restore_bn_statistics(self.supernet, statistics)
            self.scaler.update()
            self._skip_step(lr)
        else:
            self.nonfinite_in_a_row = 0
            if c.grad_clip > 0:
                grad_norm = float(
                    torch.nn.utils.clip_grad_norm_(self.supernet.parameters(), c.grad_clip)
                )
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if not self.scaler.is_enabled() and not _finite(self.supernet.parameters()):
                raise TrainingDivergedError(
                    f"training diverged: the weights became infinite or NaN in the update of step "
                    f"{self.step + 1}; {self._remedy()}"
                )
            self.step += 1
            self.passes["trained"] += len(plan)
            if self.ema is not None:
                self._update_ema()
            scores = (
                -self._mean_over_workers(torch.tensor(student_losses, dtype=torch.float64))
            ).tolist()
            self.sampler.observe(students, scores)
        return {
            "skipped_steps": self.skipped,
            "loss": total / len(plan),
            "student_ce": sum(student_losses) / max(1, len(student_losses)),
            "subnets": len(plan),
            "lr": lr,
            "grad_norm": grad_norm,
            "level": getattr(self.sampler, "level", None),
        }

    def _finite_step(self, loss: float) -> bool:
        """Whether the step's gradients (after the all-reduce: the same on every worker) are
        finite. With mixed precision the gradient scaler skips steps itself; the loss is checked
        in a single process."""
        if self.scaler.is_enabled():
            return self.world > 1 or math.isfinite(loss)
        if self.world == 1 and not math.isfinite(loss):
            return False
        return _finite(p.grad for p in self.supernet.parameters())

    def _skip_step(self, lr: float) -> None:
        """Count a step skipped for a non-finite loss or gradient; stop after a few in a row."""
        self.step += 1
        self.skipped += 1
        self.nonfinite_in_a_row += 1
        if self.nonfinite_in_a_row >= MAX_NONFINITE_STEPS:
            first = self.step - self.nonfinite_in_a_row + 1
            raise TrainingDivergedError(
                f"training diverged: the loss or its gradient was not finite at steps "
                f"{first}-{self.step} ({self.nonfinite_in_a_row} in a row, skipped); "
                f"{self._remedy()}"
            )

    def _remedy(self) -> str:
        c = self.config
        clip = f"--grad-clip (now {c.grad_clip:g})" if c.grad_clip else "set --grad-clip (now off)"
        last = f"{self.out / LAST}" if self.out is not None else "the last checkpoint"
        return (
            f"lower --lr (now {c.lr:g}) or {clip}, and train into a new --out ({last} keeps "
            "the last finite weights)"
        )

    def _require_finite_weights(self) -> None:
        tensors = list(self.supernet.state_dict().values())
        if self.ema is not None:
            tensors += list(self.ema.values())
        if not _finite(tensors):
            raise TrainingDivergedError(
                f"training diverged: the weights are not finite at step {self.step}; no checkpoint "
                f"was written; {self._remedy()}"
            )

    @torch.no_grad()
    def _update_ema(self) -> None:
        # Warm-up of the decay (as in TensorFlow's EMA) so that short runs are not dominated by
        # the initial weights.
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        for name, value in self.supernet.state_dict().items():
            if value.dtype.is_floating_point:
                self.ema[name].mul_(decay).add_(value.detach(), alpha=1 - decay)
            else:
                self.ema[name].copy_(value)

    # ----------------------------------------------------------------- evaluation

    def evaluation_net(self) -> Supernet:
        return evaluation_copy(self.supernet, self.ema)

    def evaluate(
        self, archs: Sequence[Arch], splits: Sequence[str] = ("val",)
    ) -> list[list[float]]:
        """BN-recalibrated top-1 of each arch on the named splits (EMA weights when enabled)."""
        net = self.evaluation_net()
        parts = [getattr(self.data, s) for s in splits]
        return evaluate_archs(net, archs, self.calibration, parts, self.config.eval_batch_size)

    def evaluate_probes(self) -> dict[str, Any]:
        accs = [a[0] for a in self.evaluate([p.arch for p in self.probes])]
        per_level: dict[int, list[float]] = {}
        for probe, acc in zip(self.probes, accs, strict=True):
            per_level.setdefault(probe.level, []).append(acc)
        return {
            "mean_top1": float(np.mean(accs)),
            "level_top1": [float(np.mean(per_level[k])) for k in sorted(per_level)],
            "probes": [
                {"level": p.level, self.levels.metric: p.value, "top1": a}
                for p, a in zip(self.probes, accs, strict=True)
            ],
        }

    def final_report(self) -> dict[str, Any]:
        """Val and test top-1 of every probe, and of the smallest and largest archs."""
        rows = []
        archs = [p.arch for p in self.probes]
        names = [f"level {p.level}" for p in self.probes]
        if self.config.sampler != "fixed":
            archs += [self.space.min_arch(), self.space.max_arch()]
            names += ["smallest", "largest"]
        results = self.evaluate(archs, ("val", "test"))
        for name, arch, (val, test) in zip(names, archs, results, strict=True):
            rows.append(
                {
                    "name": name,
                    "level": self.levels.level_of(self.complexity(arch)),
                    self.levels.metric: self.complexity(arch),
                    "val_top1": val,
                    "test_top1": test,
                    "arch": arch.to_dict(),
                }
            )
        probe_rows = rows[: len(self.probes)]
        return {
            "step": self.step,
            "metric": self.levels.metric,
            "edges": self.levels.edges,
            "mean_val_top1": float(np.mean([r["val_top1"] for r in probe_rows])),
            "mean_test_top1": float(np.mean([r["test_top1"] for r in probe_rows])),
            "subnet_passes": dict(self.passes),
            "rows": rows,
        }

    # ----------------------------------------------------------------- the loop

    def run(self, max_steps: int | None = None) -> RunResult:
        """Train until the end (or until ``max_steps`` steps in total), evaluating each epoch."""
        c = self.config
        stop = self.total_steps if max_steps is None else min(max_steps, self.total_steps)
        losses: list[float] = []
        if self.resumed_from is not None and self.progress:
            self._log(f"resuming {self.out} from step {self.resumed_from}/{self.total_steps}")
        bar = _progress_bar(self.total_steps, self.step, self.progress)
        started, trained = time.perf_counter(), 0
        try:
            while self.step < stop:
                epoch, first = divmod(self.step, self.steps_per_epoch)
                batches = train_batches(
                    self.data.train, c.batch_size, c.seed, epoch, first, self.rank, self.world
                )
                for x, y in batches:
                    info = self.train_step(x, y)
                    losses.append(info["loss"])
                    trained += info["subnets"]
                    rate = trained / max(1e-9, time.perf_counter() - started)
                    bar.update(1)
                    bar.set_postfix(loss=f"{info['loss']:.3f}", subnets_s=f"{rate:.1f}")
                    if c.log_every and self.step % c.log_every == 0:
                        self._record(
                            {
                                "kind": "train",
                                "step": self.step,
                                "epoch": epoch,
                                **{k: v for k, v in info.items() if k != "subnets"},
                                "subnets_per_s": rate,
                            }
                        )
                    end_of_epoch = self.step % self.steps_per_epoch == 0
                    if end_of_epoch:
                        self._end_epoch(epoch, bar)
                    if end_of_epoch or (c.checkpoint_every and self.step % c.checkpoint_every == 0):
                        self.save_checkpoint()
                    if self.step >= stop:
                        break
        finally:
            bar.close()
        if self.step < self.total_steps:
            self.save_checkpoint()
            return RunResult(self.step, self.total_steps, False, losses=losses)
        final = self._finish()
        return RunResult(self.step, self.total_steps, True, final, losses)

    def _end_epoch(self, epoch: int, bar) -> None:
        if self.rank != 0:
            return
        result = self.evaluate_probes()
        self._record({"kind": "eval", "step": self.step, "epoch": epoch, **result})
        if self.progress or self.world > 1:
            levels = " ".join(f"{a:.3f}" for a in result["level_top1"])
            bar.write(
                f"epoch {epoch + 1}: probe val top-1 mean {result['mean_top1']:.4f} "
                f"(per level: {levels})"
            )
        if result["mean_top1"] > self.best["metric"]:
            self.best = {"metric": result["mean_top1"], "step": self.step}
            if self.writer:
                self._require_finite_weights()
                save_supernet(
                    self.evaluation_net(),
                    self.out / BEST,
                    declared_space=self.declared_space.to_dict(),
                    kind="best",
                    step=self.step,
                    epoch=epoch,
                    config=self.config.to_dict(),
                    mean_val_top1=result["mean_top1"],
                )

    def _finish(self) -> dict[str, Any] | None:
        if self.rank != 0:
            return None
        if self.writer and (self.out / FINAL).is_file():
            final = json.loads((self.out / FINAL).read_text())
            if final.get("step") == self.step:
                return final
        final = self.final_report()
        if self.writer:
            write_atomic(self.out / FINAL, json.dumps(final, indent=1) + "\n")
            self._record(
                {
                    "kind": "final",
                    "step": self.step,
                    **{k: final[k] for k in ("mean_val_top1", "mean_test_top1")},
                }
            )
        return final


# --------------------------------------------------------------------- helpers


def train(
    config: TrainConfig, out: str | Path | None, *, max_steps: int | None = None, **kwargs
) -> RunResult:
    """Train (or resume) the run in ``out`` with ``config``; see :class:`Trainer`."""
    return Trainer(config, out, **kwargs).run(max_steps)


def format_final_table(final: dict[str, Any]) -> str:
    """The per-level table of a final report, as text."""
    metric = final["metric"]
    unit = "MACs" if metric == "macs" else "ms"
    header = ("arch", "level", unit, "val top-1", "test top-1")
    rows = []
    for r in final["rows"]:
        value = r[metric]
        shown = f"{value / 1e6:.2f}M" if metric == "macs" else f"{value:.2f}"
        level = "-" if r["level"] is None else str(r["level"])
        rows.append((r["name"], level, shown, f"{r['val_top1']:.4f}", f"{r['test_top1']:.4f}"))
    rows.append(
        ("probe mean", "", "", f"{final['mean_val_top1']:.4f}", f"{final['mean_test_top1']:.4f}")
    )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    return "\n".join(lines)


def _space(name: str) -> SearchSpace:
    import search_spaces

    return search_spaces.get(name)


def _load_arch(source: str, space: SearchSpace) -> Arch:
    from nas.archfile import read_arch

    where, arch = read_arch(source)
    if arch.space != space.name:
        raise ConfigError(f"--arch {where} is an arch of space {arch.space!r}, not {space.name!r}")
    try:
        return space.validate(arch)
    except ArchError as err:
        raise ArchError(f"--arch {where}: {err}") from None


def _bn_statistics(model: torch.nn.Module) -> list[tuple[torch.Tensor, ...]]:
    """Copies of the running statistics of every BatchNorm of ``model``."""
    return [
        (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
        for m in batch_norms(model)
    ]


@torch.no_grad()
def _restore_bn_statistics(model: torch.nn.Module, saved: list[tuple[torch.Tensor, ...]]) -> None:
    for m, (mean, var, count) in zip(batch_norms(model), saved, strict=True):
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)
        m.num_batches_tracked.copy_(count)


def _finite(tensors) -> bool:
    """Whether every floating-point tensor of ``tensors`` holds only finite values."""
    with torch.no_grad():
        return all(
            bool(torch.isfinite(t).all())
            for t in tensors
            if t is not None and t.is_floating_point()
        )


def _checkpoint_space(payload: dict[str, Any], path: Path) -> SearchSpace:
    try:
        return SearchSpace.from_dict(payload["space"])
    except (KeyError, SpaceError) as err:
        raise CheckpointError(f"{path}: bad space declaration: {err}") from None


def _task(space: SearchSpace) -> str:
    return f"{space.in_channels} input channels, {space.num_classes} classes"


def _optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for param in model.parameters():
        (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=config.lr)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_states() -> dict[str, Any]:
    """Global RNG states as tensors and plain types (loadable with weights_only=True)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states = {
        "python": [version, list(internal), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _truncate_metrics(path: Path, step: int) -> None:
    """Keep the records up to ``step`` (what the checkpoint covers); drop partial lines."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if not isinstance(record, dict):
            continue
        if record.get("step", 0) <= step and record.get("kind") != "final":
            kept.append(line + "\n")
    write_atomic(path, "".join(kept))


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, **kwargs) -> None: ...
    def write(self, text: str) -> None:
        print(text, file=sys.stderr)

    def close(self) -> None: ...


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc="train")
