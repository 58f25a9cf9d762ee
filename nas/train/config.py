"""The configuration of a supernet training run, checked at the boundary and written as YAML.

:class:`TrainConfig` holds every option of ``nas train``. :meth:`TrainConfig.resolved` fills the
automatic values (device, AMP, warm-up) so the file written into the run folder describes
exactly what ran; rerunning with the same options resumes that run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from nas.errors import InputError

SAMPLERS = ("uniform", "sandwich", "cas", "cas+pas", "fixed")
DISTILL = ("none", "kl", "alpha")
OPTIMIZERS = ("adamw", "sgd")
LEVEL_METRICS = ("macs", "latency")
AMP = ("auto", "on", "off")
DATA_FORMATS = ("auto", "digits", "idx", "cifar10", "cifar100", "folder", "npz")
CONFIG_FILE = "config.yaml"
#: Options that may differ when a run is resumed: they do not change the trained weights.
RESUME_FREE = frozenset({"threads", "log_every"})


class ConfigError(InputError):
    """An option is out of range or options contradict each other."""


@dataclass(frozen=True)
class TrainConfig:
    """Every option of a training run (``nas train --help`` explains each one)."""

    space: str = "hybrid-tiny"  # built-in space name or space YAML path
    data: str = "digits"  # 'digits' (embedded) or a data set path
    data_format: str = "auto"  # auto, digits, idx, cifar10, cifar100, folder, npz
    train_limit: int = 0  # keep at most this many training images (fixed subset; 0 = all)
    eval_limit: int = 0  # keep at most this many val and test images each (0 = all)
    epochs: int = 10
    batch_size: int = 64
    sampler: str = "uniform"
    subnets: int = 2  # subnets the sampler picks per step (besides the distillation teacher)
    best_of: int = 1  # AttentiveNAS: each pick is the best of k candidates by mini-batch loss
    arch: str | None = None  # arch file trained alone by the 'fixed' sampler
    levels: int = 6  # complexity levels of CAS, PAS and the per-level probes
    level_metric: str = "macs"  # macs, or latency (needs device_profile)
    device_profile: str | None = None  # latency table of the target device (for latency levels)
    pool_draws: int = 1000  # archs drawn to build the per-level candidate pools
    pool_size: int = 100  # candidates kept per level
    bank_size: int = 50  # PAS: (arch, score) entries kept per level
    exploit_start: float = 0.2  # PAS: exploit probability at the start ...
    exploit_end: float = 0.8  # ... rising linearly to this at the end
    rescore_every: int = 50  # PAS: re-score a level's bank when it is older than this (steps)
    explore_candidates: int = 3  # PAS: candidates ranked by the width-over-depth rule on explore
    distill: str = "kl"  # in-place distillation from the largest subnet: none, kl, alpha
    alpha_min: float = -1.0  # alpha-divergence range (AlphaNet)
    alpha_max: float = 1.0
    alpha_clip: float = 5.0  # clip of the importance ratio (p/q)^alpha
    label_smoothing: float = 0.1
    optimizer: str = "adamw"
    lr: float = 2e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    momentum: float = 0.9  # SGD only (Nesterov)
    warmup_steps: int = -1  # -1: 5% of the steps
    grad_clip: float = 5.0  # max gradient norm (0 = off)
    ema_decay: float = 0.0  # EMA of the weights (0 = off); evaluation then uses the EMA
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    amp: str = "auto"  # auto (on with CUDA), on, off
    seed: int = 0
    checkpoint_every: int = 0  # also checkpoint every N steps (0: at each epoch end only)
    log_every: int = 10  # steps between train records in metrics.jsonl
    probes_per_level: int = 1  # fixed probe archs per level evaluated each epoch
    calib_images: int = 512  # training images for BN recalibration of each probe
    eval_batch_size: int = 256
    workers: int = 1  # data-parallel workers (Ray Train) when > 1
    threads: int = 0  # torch CPU threads per process (0 = torch's default)

    # ----------------------------------------------------------------- checks

    def check(self) -> TrainConfig:
        """Raise :class:`ConfigError` naming the first bad option; return self."""
        _one_of(self.sampler, SAMPLERS, "sampler")
        _one_of(self.distill, DISTILL, "distill")
        _one_of(self.optimizer, OPTIMIZERS, "optimizer")
        _one_of(self.level_metric, LEVEL_METRICS, "level-metric")
        _one_of(self.amp, AMP, "amp")
        _one_of(self.data_format, DATA_FORMATS, "data-format")
        for name in ("epochs", "batch_size", "subnets", "best_of", "levels", "pool_draws"):
            _at_least(getattr(self, name), 1, name)
        for name in ("pool_size", "bank_size", "rescore_every", "explore_candidates"):
            _at_least(getattr(self, name), 1, name)
        for name in ("probes_per_level", "calib_images", "eval_batch_size", "workers"):
            _at_least(getattr(self, name), 1, name)
        for name in ("train_limit", "eval_limit", "checkpoint_every", "threads", "log_every"):
            _at_least(getattr(self, name), 0, name)
        _at_least(self.warmup_steps, -1, "warmup_steps")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"--{_flag(f.name)} = {value} must be a finite number")
        for name in ("lr", "min_lr", "weight_decay", "momentum", "grad_clip", "alpha_clip"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{_flag(name)} = {getattr(self, name)} must be >= 0")
        if self.lr == 0:
            raise ConfigError("--lr must be > 0")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"--ema-decay = {self.ema_decay} must be in [0, 1)")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"--label-smoothing = {self.label_smoothing} must be in [0, 1)")
        for name in ("exploit_start", "exploit_end"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"--{_flag(name)} = {getattr(self, name)} must be in [0, 1]")
        if self.alpha_min > self.alpha_max:
            raise ConfigError(f"--alpha-min {self.alpha_min} exceeds --alpha-max {self.alpha_max}")
        if self.batch_size % self.workers:
            raise ConfigError(
                f"--batch-size {self.batch_size} must be a multiple of --workers {self.workers}"
            )
        if (self.sampler == "fixed") != (self.arch is not None):
            raise ConfigError("--arch FILE goes with --sampler fixed (and only with it)")
        if self.level_metric == "latency" and not self.device_profile:
            raise ConfigError("--level-metric latency needs --device-profile PATH")
        return self

    # ----------------------------------------------------------------- resolution

    def resolved(self, cuda_available: bool) -> TrainConfig:
        """Automatic values made explicit: ``device`` and ``amp``."""
        device = self.device
        if device == "auto":
            device = "cuda" if cuda_available else "cpu"
        if device.startswith("cuda") and not cuda_available:
            raise ConfigError(f"--device {device}: CUDA is not available here")
        if device != "cpu" and not device.startswith("cuda"):
            raise ConfigError(f"--device {device!r}: choices are auto, cpu, cuda, cuda:N")
        amp = self.amp
        if amp == "auto":
            amp = "on" if device.startswith("cuda") else "off"
        if amp == "on" and device == "cpu":
            raise ConfigError("--amp on needs a CUDA device")
        return replace(self, device=device, amp=amp)

    def warmup_for(self, total_steps: int) -> int:
        return self.warmup_steps if self.warmup_steps >= 0 else max(1, total_steps // 20)

    # ----------------------------------------------------------------- files

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(
                f"unknown option(s) {sorted(unknown)}; the options are those of `nas train "
                "--help`, with _ for -"
            )
        defaults = cls()
        for name, value in data.items():
            _check_type(name, value, getattr(defaults, name))
        return cls(**data)

    def differences(self, other: TrainConfig) -> list[str]:
        """Options (other than :data:`RESUME_FREE`) whose values differ, as ``name: a -> b``."""
        out = []
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name not in RESUME_FREE and a != b:
                out.append(f"{_flag(f.name)}: {a!r} -> {b!r}")
        return out


def write_config(path: Path, config: TrainConfig, derived: dict[str, Any]) -> None:
    """The resolved configuration and the values derived from it (classes, steps) as YAML."""
    import yaml

    from nas.runs import write_atomic

    text = "# nas train: resolved configuration (rerun the same options to resume)\n"
    text += yaml.safe_dump(config.to_dict(), sort_keys=False)
    text += yaml.safe_dump({"derived": derived}, sort_keys=False)
    write_atomic(path, text)


def _read_mapping(path: Path) -> dict[str, Any]:
    from nas.textfiles import FileFormatError, read_yaml

    try:
        data = read_yaml(path, "a training configuration (nas train options)")
    except FileFormatError as err:
        raise ConfigError(str(err)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a configuration mapping of option: value")
    return data


def read_config(path: Path) -> TrainConfig:
    """The configuration a run folder was started with (``derived`` values are ignored)."""
    data = _read_mapping(path)
    data.pop("derived", None)
    try:
        return TrainConfig.from_dict(data)
    except (ConfigError, TypeError) as err:
        raise ConfigError(f"{path}: {err}") from None


def read_derived(path: Path) -> dict[str, Any]:
    """The values a run derived from its configuration (classes, steps, preprocessing)."""
    derived = _read_mapping(path).get("derived")
    return derived if isinstance(derived, dict) else {}


def _check_type(name: str, value: Any, default: Any) -> None:
    """Refuse an option value of the wrong type (from a configuration file)."""
    if isinstance(default, bool) or default is None:
        ok = value is None or isinstance(value, str)
        wanted = "a string"
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        wanted = "an integer"
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        wanted = "a number"
    else:
        ok = isinstance(value, str)
        wanted = "a string"
    if not ok:
        raise ConfigError(f"{_flag(name)} = {value!r} must be {wanted}")


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _one_of(value: str, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise ConfigError(f"--{name} {value!r} is not allowed; choices: {', '.join(allowed)}")


def _at_least(value: int, low: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"--{_flag(name)} = {value!r} must be an integer >= {low}")
