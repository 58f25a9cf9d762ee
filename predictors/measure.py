"""The measurement job behind ``nas device measure``: a device profile measured on this machine.

Steps, each saved to the profile file as it completes (atomically, chunk by chunk), so the job can
be killed at any moment and resumed by running the same command again:

1. the baseline: one invocation of a module with no work in it;
2. fusion rules: for every (unit kind, operator) and (unit, unit) pair met in the space, the two
   pieces are timed apart and together; they fuse when ``t1 + t2 - t12 > 0.5 * min(t1, t2)``
   (nn-Meter's test) or when the saving exceeds 5% of ``t12`` (:func:`fuses`; times net of the
   baseline). Rounds repeat until no pair is undecided;
3. kernel configurations: every distinct kernel of the space (optionally at some resolutions
   only) when there are at most ``max_exact`` of them -- an exact lookup table; otherwise a prior
   sample per kind, then adaptive rounds that measure a random check batch, find configurations
   the per-kind regressors miss by more than 10% and measure their nearest neighbours;
4. whole models: a few subnets timed end to end, for the predictor's per-model overhead term.
   Their passes are interleaved with step 3 (one after each pass over the kernels; with adaptive
   sampling, one before it and the rest after), so that a shared machine's changes of speed
   reach the models as they reach the kernels rather than biasing the overhead fit.

Every timing uses the protocol of :mod:`predictors.backends`, ``passes`` times over shuffled
chunks (sized by :class:`~predictors.backends.ChunkSizer`); a measurement's value is the least of its passes' statistics. A backend whose
conversions take seconds (executorch, tflite) keeps them in ``OUT.conversions/`` beside the
profile until it is complete, so that a job killed in a later pass does not convert again.
"""

from __future__ import annotations

import dataclasses
import math
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from nas.arch import Arch
from nas.errors import InputError
from nas.layers import slots
from nas.space import SearchSpace
from predictors.backends import (
    ChunkSizer,
    Timing,
    TimingProtocol,
    get_backend,
    time_modules,
)
from predictors.kernels import FusionRule, FusionRules, KernelSpec, fusion_candidates
from predictors.positions import position_layers
from predictors.profile import DeviceProfile, KernelRecord, Measurement, ModelRecord

#: Settings profiles measured before they were recorded were measured with.
LEGACY_SETTINGS = {"precision": "fp32", "min_span_ms": 0.0}
FUSION_THRESHOLD = 0.5
ADDITIVITY_TOLERANCE = 0.05
ADAPTIVE_ERROR = 0.10
#: The most kernels and whole models timed round-robin at once (:class:`ChunkSizer`): fast ones
#: fill a chunk until its round-robin lasts ``min_span_ms``; these bound the memory they hold.
MOST_KERNELS = 128
MOST_MODELS = 32


def fuses(t1: float, t2: float, t12: float) -> bool:
    """Whether two pieces timed apart (``t1``, ``t2``) and together (``t12``) run fused.

    nn-Meter's test -- the pair saves more than half of the smaller piece -- or a saving above
    5% of the pair's time: splitting such a pair would overestimate it (an activation fused into
    a convolution is cheaper inside it, but not free, and can fail nn-Meter's test). Erring
    towards fusion is safe: a fused pair timed as one kernel is timed right, only with more
    configurations to measure. Times are net of the baseline invocation.
    """
    saving = t1 + t2 - t12
    return saving > FUSION_THRESHOLD * max(min(t1, t2), 1e-6) or saving > ADDITIVITY_TOLERANCE * t12


class MeasureSettingsError(InputError):
    """A resumed measurement does not match the settings or machine of the existing profile."""


@dataclass(frozen=True)
class MeasureSettings:
    backend: str = "onnxruntime"
    threads: int = 1
    batch: int = 1
    precision: str = "fp32"
    warmup: int = 10
    repeats: int = 30
    passes: int = 3
    statistic: str = "min"
    min_time_ms: float = 40.0
    min_span_ms: float = 5000.0
    resolutions: tuple[int, ...] | None = None
    max_exact: int = 4000
    models: int = 32
    prior_per_kind: int = 40
    adaptive_rounds: int = 4
    adaptive_batch: int = 200
    chunk: int = 16
    seed: int = 0
    device: str | None = None
    rewarm: bool = True
    jobs: int = 1  # worker processes converting kernels ahead of timing (executorch)

    def protocol(self) -> TimingProtocol:
        return TimingProtocol(
            self.warmup,
            self.repeats,
            self.statistic,
            self.min_time_ms,
            rewarm=self.rewarm,
            min_span_ms=self.min_span_ms,
        )

    def stored(self) -> dict[str, Any]:
        """The settings a resumed job must share with the profile."""
        return {
            "threads": self.threads,
            "batch": self.batch,
            "precision": self.precision,
            "warmup": self.warmup,
            "repeats": self.repeats,
            "passes": self.passes,
            "statistic": self.statistic,
            "min_time_ms": self.min_time_ms,
            "min_span_ms": self.min_span_ms,
            "rewarm": self.rewarm,
            "resolutions": list(self.resolutions) if self.resolutions else None,
        }


def space_resolutions(space: SearchSpace, settings: MeasureSettings) -> tuple[int, ...]:
    if not settings.resolutions:
        return space.resolutions
    bad = [r for r in settings.resolutions if r not in space.resolutions]
    if bad:
        raise InputError(
            f"resolutions {bad} are not in space {space.name!r}; choices: {list(space.resolutions)}"
        )
    return tuple(settings.resolutions)


def enumerate_kernels(
    space: SearchSpace, rules: FusionRules, resolutions: Sequence[int] | None = None
) -> list[KernelSpec]:
    """Every distinct kernel configuration of ``space`` (at ``resolutions``), in a stable order."""
    from predictors.latency import OperatorScheme

    scheme = OperatorScheme(rules)
    allowed = set(resolutions or space.resolutions)
    found: dict[KernelSpec, None] = {}
    for position in slots(space):
        values = space.dimensions[position.deps[0]].values
        per_res = math.prod(position.shape(space)[1:])
        for flat, layer in position_layers(space, position):
            resolution = values[flat // per_res]
            if resolution in allowed:
                found.update(dict.fromkeys(scheme.layer_units(layer, resolution)))
    return list(found)


def calibration_archs(
    space: SearchSpace, count: int, resolutions: Sequence[int], seed: int
) -> list[Arch]:
    """Subnets for the overhead fit: the smallest and largest, then random ones."""
    rng = random.Random(seed + 1)
    archs = [
        dataclasses.replace(space.min_arch(), resolution=min(resolutions)),
        dataclasses.replace(space.max_arch(), resolution=max(resolutions)),
    ]
    for _ in range(100 * count):
        if len(archs) >= count:
            break
        arch = dataclasses.replace(space.sample(rng), resolution=rng.choice(list(resolutions)))
        if arch not in archs:
            archs.append(arch)
    return archs[:count]


def model_runner_inputs(space: SearchSpace, arch: Arch, batch: int, seed: int):
    """A freshly initialised model of ``arch`` (seeded, as exported) and its input."""
    import torch

    from nas.blocks.nn import build_model, deployed

    torch.manual_seed(seed)
    model = deployed(build_model(space, arch), space, arch).eval()
    image = torch.randn(batch, space.in_channels, arch.resolution, arch.resolution)
    return model, (image,)


class MeasurementJob:
    """Measures a device profile into ``out`` (resuming what is already there)."""

    def __init__(
        self,
        space: SearchSpace,
        out: str | Path,
        settings: MeasureSettings,
        progress: bool = True,
        log: Callable[[str], None] = print,
    ):
        self.space = space
        self.out = Path(out)
        self.settings = settings
        self.progress = progress
        self.log = log
        self.backend = get_backend(
            settings.backend, settings.threads, settings.batch, settings.precision
        )
        self.protocol = settings.protocol()
        self.resolutions = space_resolutions(space, settings)
        self._stop_after: int | None = None  # tests: stop after this many measured chunks
        self._chunks = 0

    # ----------------------------------------------------------------- profile

    def _new_profile(self) -> DeviceProfile:
        env = self.backend.environment()
        s = self.settings
        device = s.device or f"{env['cpu']} / {s.backend} / {s.threads} thread(s)"
        if s.precision != "fp32" and not s.device:
            device += f" / {s.precision}"
        return DeviceProfile(
            device=device,
            backend=s.backend,
            scheme="operators",
            space_name=self.space.name,
            space_declaration=self.space.to_dict(),
            settings=s.stored(),
            source="measured",
            environment=env,
        )

    def _open(self) -> DeviceProfile:
        if not self.out.exists():
            return self._new_profile()
        profile = DeviceProfile.load(self.out)
        profile.check_space(self.space)
        if profile.source != "measured" or profile.backend != self.settings.backend:
            raise MeasureSettingsError(
                f"{self.out} holds a {profile.source} profile for backend {profile.backend!r}; "
                f"to measure {self.settings.backend!r} give another --out"
            )
        stored, wanted = profile.settings, self.settings.stored()
        diff = [k for k in wanted if stored.get(k, LEGACY_SETTINGS.get(k)) != wanted[k]]
        if diff:
            shown = ", ".join(f"{k}: {stored.get(k)!r} there, {wanted[k]!r} now" for k in diff)
            raise MeasureSettingsError(
                f"{self.out} was measured with other settings ({shown}); "
                "resume with the same settings or give another --out"
            )
        stale = profile.stale_forms()
        if stale:
            raise MeasureSettingsError(
                f"{self.out} timed {stale}; timings of two forms cannot be mixed: give another "
                "--out to measure a fresh profile"
            )
        env = self.backend.environment()
        for key in ("cpu", "onnxruntime", "torch", "executorch", "litert-torch", "ai-edge-litert"):
            if key in env and profile.environment.get(key) not in (None, env[key]):
                raise MeasureSettingsError(
                    f"{self.out} was measured with {key} = {profile.environment.get(key)!r}; "
                    f"this machine has {env[key]!r}: measurements of two setups cannot be mixed"
                )
        return profile

    def _save(self, profile: DeviceProfile) -> None:
        profile.save(self.out)

    # ----------------------------------------------------------------- timing

    def _time(self, modules: Sequence[tuple[str, Callable[[], tuple[Any, tuple]]]]) -> list[Timing]:
        """Time (cache key, module builder) pairs round-robin (:func:`time_modules`)."""
        return time_modules(self.backend, modules, self.protocol, self.settings.jobs, self.progress)

    def _model(self, arch: Arch, batch: int):
        return arch.to_json(), partial(
            model_runner_inputs, self.space, arch, batch, self.settings.seed
        )

    def _kernel(self, spec: KernelSpec):
        from predictors.modules import kernel_module

        return spec.key, partial(kernel_module, spec, self.settings.batch)

    def _checkpoint(self, profile: DeviceProfile) -> None:
        self._save(profile)
        self._chunks += 1
        if self._stop_after is not None and self._chunks >= self._stop_after:
            raise KeyboardInterrupt("stopped for a test")

    def _measure_specs(
        self,
        profile: DeviceProfile,
        specs: Sequence[KernelSpec],
        label: str,
        passes: int | None = None,
    ):
        """Measure ``specs`` (and the baseline) for their first ``passes`` passes (all by
        default), chunk by chunk, saving as it goes."""
        from predictors.modules import BASELINE

        passes = self.settings.passes if passes is None else passes
        records = profile.kernels
        total = len(specs) * passes
        done = sum(
            min(len(records[s.key].measurement.passes), passes) for s in specs if s.key in records
        )
        bar = _bar(total, done, label, self.progress)
        for p in range(passes):
            todo = [
                s
                for s in specs
                if s.key not in records or len(records[s.key].measurement.passes) <= p
            ]
            random.Random(self.settings.seed * 1000 + p).shuffle(todo)
            sizer = ChunkSizer(self.protocol, self.settings.chunk, MOST_KERNELS)
            for chunk in sizer.chunks(todo):
                timings = self._time([self._kernel(s) for s in (BASELINE, *chunk)])
                sizer.update(timings)
                if profile.baseline is None:
                    profile.baseline = Measurement([])
                if len(profile.baseline.passes) < self.settings.passes:
                    profile.baseline.passes.append(timings[0])
                for spec, timing in zip(chunk, timings[1:], strict=True):
                    record = records.get(spec.key)
                    if record is None:
                        record = records[spec.key] = KernelRecord(
                            spec.key, spec.kind, spec.feature_dict(), Measurement([])
                        )
                    record.measurement.passes.append(timing)
                bar.update(len(chunk))
                self._checkpoint(profile)
        bar.close()

    # ----------------------------------------------------------------- steps

    def _graphs(self):
        from nas.graph import operator_graph

        rng = random.Random(self.settings.seed)
        top = max(self.resolutions)
        archs = [self.space.max_arch(), self.space.min_arch()]
        archs += [self.space.sample(rng) for _ in range(6)]
        return [operator_graph(self.space, dataclasses.replace(a, resolution=top)) for a in archs]

    def _fusion_rules(self, profile: DeviceProfile) -> FusionRules:
        from predictors.modules import BASELINE

        rules = FusionRules.from_list(profile.fusion_rules)
        graphs = self._graphs()
        rounds = 0
        while True:
            candidates = fusion_candidates(graphs, rules)
            if not candidates:
                return rules
            rounds += 1
            if rounds > 8:
                raise RuntimeError("fusion rule detection did not settle after 8 rounds")
            self.log(
                f"fusion rules, round {rounds}: testing "
                + ", ".join(f"{c.first}+{c.second}" for c in candidates)
            )
            modules = [self._kernel(BASELINE)]
            for c in candidates:
                modules += [self._kernel(s) for s in (c.first_spec, c.second_spec, c.fused_spec)]
            # The rules decide how every graph is cut: one more pass than for kernels.
            per_pass = [self._time(modules) for _ in range(self.settings.passes + 1)]

            def best(i: int, per_pass=per_pass) -> float:
                return min(t[i].value(self.settings.statistic) for t in per_pass)

            base = best(0)
            for k, c in enumerate(candidates):
                t1, t2, t12 = (best(1 + 3 * k + j) - base for j in range(3))
                fused = fuses(t1, t2, t12)
                saving = t1 + t2 - t12
                rules.add(
                    FusionRule(
                        c.first,
                        c.second,
                        bool(fused),
                        c.level,
                        {
                            "t_first_ms": t1,
                            "t_second_ms": t2,
                            "t_fused_ms": t12,
                            "baseline_ms": base,
                            "saving_ratio": saving / max(min(t1, t2), 1e-9),
                            "first": c.first_spec.key,
                            "second": c.second_spec.key,
                        },
                    )
                )
            profile.fusion_rules = rules.to_list()
            self._save(profile)

    def _models(self, profile: DeviceProfile, passes: int | None = None) -> None:
        """Time the calibration subnets for their first ``passes`` passes (all by default)."""
        archs = calibration_archs(
            self.space, self.settings.models, self.resolutions, self.settings.seed
        )
        by_arch = {Arch.from_dict(m.arch): m for m in profile.models}
        for arch in archs:
            if arch not in by_arch:
                record = ModelRecord(arch.to_dict(), Measurement([]))
                profile.models.append(record)
                by_arch[arch] = record
        passes = self.settings.passes if passes is None else passes
        batch = self.settings.batch
        total = len(archs) * passes
        done = sum(min(len(by_arch[a].measurement.passes), passes) for a in archs)
        bar = _bar(total, done, "whole models", self.progress, unit="model")
        for p in range(passes):
            todo = [a for a in archs if len(by_arch[a].measurement.passes) <= p]
            random.Random(self.settings.seed * 1000 + p).shuffle(todo)
            sizer = ChunkSizer(self.protocol, max(1, self.settings.chunk // 2), MOST_MODELS)
            for chunk in sizer.chunks(todo):
                timings = self._time([self._model(a, batch) for a in chunk])
                sizer.update(timings)
                for arch, timing in zip(chunk, timings, strict=True):
                    by_arch[arch].measurement.passes.append(timing)
                bar.update(len(chunk))
                self._checkpoint(profile)
        bar.close()

    def _adaptive(self, profile: DeviceProfile, pool: list[KernelSpec]) -> None:
        from predictors.latency import KindRegressor, numeric_features

        s = self.settings
        state = profile.plan.setdefault("adaptive", {"round": 0, "history": []})
        rng = random.Random(s.seed)
        by_kind: dict[str, list[KernelSpec]] = {}
        for spec in pool:
            by_kind.setdefault(spec.kind, []).append(spec)
        if state["round"] == 0:
            prior = []
            for specs in by_kind.values():
                prior += rng.sample(specs, min(len(specs), s.prior_per_kind))
            state["pending"] = [p.key for p in prior]
            state["round"] = 1
            self._save(profile)
        while True:
            pending = [KernelSpec.from_key(k) for k in state.get("pending", [])]
            if pending:
                self._measure_specs(profile, pending, f"adaptive round {state['round']}")
                state["pending"] = []
                self._save(profile)
            if state["round"] > s.adaptive_rounds:
                return
            measured = {
                k for k, r in profile.kernels.items() if len(r.measurement.passes) >= s.passes
            }
            rest = [p for p in pool if p.key not in measured]
            if not rest:
                return
            check = random.Random(s.seed + state["round"]).sample(
                rest, min(len(rest), s.adaptive_batch)
            )
            self._measure_specs(profile, check, f"adaptive check {state['round']}")
            # Regressors fitted without the check batch judge where the prior is too thin.
            check_keys = {c.key for c in check}
            errors, bad = [], []
            for kind, specs in by_kind.items():
                train = [
                    profile.kernels[p.key]
                    for p in specs
                    if p.key in profile.kernels and p.key not in check_keys
                ]
                tests = [c for c in check if c.kind == kind]
                if not tests:
                    continue
                truth = np.array(
                    [profile.kernels[c.key].measurement.ms(s.statistic) for c in tests]
                )
                if len(train) < 3:
                    bad += tests
                    errors += [1.0] * len(tests)
                    continue
                model = KindRegressor(
                    [numeric_features(r.features) for r in train],
                    np.array([r.measurement.ms(s.statistic) for r in train]),
                )
                guess = model.predict([numeric_features(c.feature_dict()) for c in tests])
                rel = np.abs(guess - truth) / truth
                errors += rel.tolist()
                bad += [c for c, e in zip(tests, rel, strict=True) if e > ADAPTIVE_ERROR]
            share = float(np.mean(np.array(errors) > ADAPTIVE_ERROR)) if errors else 0.0
            state["history"].append(
                {"round": state["round"], "checked": len(check), "share_over_10pct": share}
            )
            self.log(
                f"adaptive round {state['round']}: {share:.1%} of {len(check)} checked "
                f"configurations miss by more than {ADAPTIVE_ERROR:.0%}"
            )
            measured |= check_keys
            state["pending"] = [n.key for n in _neighbours(bad, by_kind, measured, per_bad=2)]
            state["round"] += 1
            self._save(profile)
            if share < 0.02 or not state["pending"]:
                return

    # ----------------------------------------------------------------- run

    def _missing_kernels(self, profile: DeviceProfile) -> int:
        """Kernel configurations of the space (cut by the profile's fusion rules) that a profile
        measured kernel by kernel lacks: those a newer version of a block's operator graph makes.
        Left alone, they would be regressed from other kernels."""
        if not profile.measures_every_kernel:
            return 0
        rules = FusionRules.from_list(profile.fusion_rules)
        pool = enumerate_kernels(self.space, rules, self.resolutions)
        return sum(spec.key not in profile.kernels for spec in pool)

    def run(self) -> DeviceProfile:
        profile = self._open()
        if profile.complete:
            missing = self._missing_kernels(profile)
            if not missing:
                self.log(f"{self.out} is complete ({len(profile.kernels)} kernels); nothing to do")
                return profile
            self.log(
                f"{self.out} lacks {missing} kernel configurations of {self.space.name} as this "
                "version splits it into kernels; measuring them (a fresh --out measures every "
                "kernel in one session)"
            )
            profile.complete = False
        self._save(profile)
        conversions = self._keep_conversions()
        rules = self._fusion_rules(profile)
        fused = ", ".join(f"{r.first}+{r.second}" for r in rules if r.fused) or "none"
        self.log(f"fusion rules: {len(rules)} tested, fused: {fused}")
        pool = enumerate_kernels(self.space, rules, self.resolutions)
        strategy = "exact" if len(pool) <= self.settings.max_exact else "adaptive"
        profile.plan.update(
            {
                "strategy": strategy,
                "configurations": len(pool),
                "resolutions": list(self.resolutions),
            }
        )
        self.log(f"{len(pool)} distinct kernel configurations: {strategy} strategy")
        # The calibration subnets' passes are spread over the job like the kernels' (each after
        # a kernel pass, or before and after adaptive sampling), so that the overhead fit sees
        # the machine at the same speeds as the kernels it relates them to.
        passes = self.settings.passes
        if strategy == "exact":
            for p in range(1, passes + 1):
                self._measure_specs(profile, pool, _pass_label("kernels", p, passes), passes=p)
                self._models(profile, passes=p)
        else:
            self._models(profile, passes=1)
            self._adaptive(profile, pool)
            self._models(profile)
        profile.complete = True
        self._save(profile)
        if conversions is not None:
            shutil.rmtree(conversions, ignore_errors=True)
        return profile

    def _keep_conversions(self) -> Path | None:
        """Where a converting backend (executorch, tflite) keeps what it converted until the
        profile is complete: a job killed in its second pass converts nothing again."""
        keep = getattr(self.backend, "keep_conversions", None)
        if keep is None:
            return None
        folder = self.out.parent / f"{self.out.name}.conversions"
        found = keep(folder)
        if found:
            self.log(f"resuming: {found} conversions of an earlier run are kept in {folder}")
        return folder


def _neighbours(
    bad: list[KernelSpec],
    by_kind: dict[str, list[KernelSpec]],
    measured: set[str],
    per_bad: int,
) -> list[KernelSpec]:
    """For each badly predicted configuration, its nearest unmeasured ones of the same kind."""
    from predictors.latency import numeric_features

    chosen: dict[str, KernelSpec] = {}
    for kind in {b.kind for b in bad}:
        candidates = [s for s in by_kind[kind] if s.key not in measured]
        if not candidates:
            continue
        names = sorted({n for s in candidates for n in numeric_features(s.feature_dict())})

        def vector(spec: KernelSpec, names=names) -> np.ndarray:
            row = numeric_features(spec.feature_dict())
            return np.log1p(np.abs([row.get(n, 0.0) for n in names]))

        matrix = np.stack([vector(s) for s in candidates])
        for b in (x for x in bad if x.kind == kind):
            distance = np.abs(matrix - vector(b)).sum(1)
            for i in np.argsort(distance)[:per_bad]:
                chosen.setdefault(candidates[i].key, candidates[i])
    return list(chosen.values())


def _pass_label(label: str, done: int, passes: int) -> str:
    return label if passes == 1 else f"{label} (pass {done}/{passes})"


def _bar(total: int, initial: int, label: str, enabled: bool, unit: str = "kernel"):
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, desc=label, unit=unit, disable=not enabled, leave=False
    )
