"""The block kinds of a hybrid space at equal MACs: measured and predicted latency on this machine.

For each block kind of the space (``mobile-zoo`` by default: ``mbconv``, ``fused_mbconv`` and
``repvit`` in its conv stages; ``transformer``, ``mobilevit``, ``mobilevitv2``,
``efficientformer`` and whatever other kinds its global stages hold) and, for kinds whose layers
take an attention kind, each attention kind (``softmax``, ``relu_linear``, ``separable``), one
arch is built at a common MAC count:

* the base arch is a preset of the space (``--base``, MobileViT-XXS) at ``--resolution`` (224);
* the kind under study fills every layer of the stages that offer it; the other stages keep the
  base's layers (conv stages: MBConv; global stages: MobileViT blocks with softmax attention);
* in the filled stages, each stage's depth and width and the kind's expansion choices
  (``expand_ratio``, ``mlp_ratio``, ``transformer_depth``, ``downsample_expand``: one value for
  all filled stages) are adjusted over every combination the space allows; kernel, heads and
  value scale stay the base's;
* the common target (``--macs``, or by default the MAC count every kind reaches within half the
  tolerance that is closest to the base's, or failing that the one whose largest deviation is
  smallest) is met by each arch within ``--tolerance`` (5%): among the combinations within half
  the tolerance the one fewest choice steps away from the base is kept (else the closest in
  MACs).

MACs and parameters are the operator graph's (``nas inspect``). Each arch is then built as
exported (deploy steps applied, fresh weights) and timed side by side with the engine's measuring
backends (``predictors.backends``: ONNX Runtime's CPU provider and eager torch, batch 1, one
thread): every pass times all archs round-robin on one backend (``time_runners``, median of the
timed calls), passes alternate between backends, and a row's figure is the median over passes.
Ratios are to the reference kind (``--reference``, MBConv). Predicted latencies come from every
profile at hand that applies to the space: the published tables of ``../shared/data`` (or
``$NAS_SHARED_DATA``; the Pixel 4 table is of ``elasticvit``, the Note10 one of ``ofa-mbv3``) and
each ``--profile`` file (for instance ``nas device measure --space mobile-zoo --backend
onnxruntime --resolutions 224 --out ORT.json``); when none applies, the output says so.

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/block_kinds.py [--quick]
        [--space mobile-zoo] [--base mobilevit-xxs] [--resolution 224] [--macs M]
        [--tolerance 0.05] [--kinds ...] [--attentions ...] [--reference mbconv]
        [--backends onnxruntime torch] [--passes 3] [--repeats 30] [--warmup 10]
        [--profile FILE ...] [--out runs/block_kinds] [--no-progress]

Writes ``block_kinds.md`` (the table, also printed), ``block_kinds.json`` (settings, archs,
MACs, every pass's timings, predictions, machine) and ``block_kinds.png`` to ``--out``. The
chosen archs and each finished pass are cached under ``--out/cells`` by a digest of their
settings: rerun the same command after an interruption and it resumes. The machine may be
shared: the figures that compare are the ratios of one run.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from latency_predictor import shared_data
from tqdm.auto import tqdm

import search_spaces
from nas import presets
from nas.arch import Arch, StageArch
from nas.errors import InputError
from nas.graph import count
from nas.layers import layers_of
from nas.runs import write_atomic
from nas.space import SearchSpace
from predictors.complexity import ComplexityTable

#: Choices adjusted, one value for all the stages a kind fills, besides each stage's depth/width.
EXPANSIONS = ("expand_ratio", "mlp_ratio", "transformer_depth", "downsample_expand")
QUICK = {"passes": 1, "repeats": 3, "warmup": 1, "attentions": ["softmax"]}


class StudyError(InputError):
    """Settings the study cannot run with; the message says what would be valid."""


@dataclass(frozen=True)
class Case:
    """One row: a block kind (and its attention kind, if its layers take one) at the target."""

    kind: str
    attention: str | None
    arch: Arch
    stages: tuple[int, ...]

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.attention}" if self.attention else self.kind


# --------------------------------------------------------------------- MACs


class StageMacs:
    """MACs of archs as sums of cached per-stage totals: a stage's layers depend only on the
    resolution, the width feeding it and its own choices (exactly :func:`nas.graph.count`)."""

    def __init__(self, space: SearchSpace):
        self.space = space
        self.layers = ComplexityTable(space)
        self.cache: dict[tuple, int] = {}

    @staticmethod
    def _keys(arch: Arch) -> list[tuple]:
        keys, feeding = [("stem", arch.resolution, arch.stem)], arch.stem.width
        for i, stage in enumerate(arch.stages):
            keys.append((i, arch.resolution, feeding, stage))
            feeding = stage.width
        return [*keys, ("head", arch.resolution, feeding)]

    def __call__(self, arch: Arch) -> int:
        """MACs of ``arch`` (``InputError`` if it is not valid for the space)."""
        keys = self._keys(arch)
        if any(k not in self.cache for k in keys):
            groups = {k[0]: 0 for k in keys}
            for layer in layers_of(self.space, arch):
                part = layer.slot.split(".")
                group = int(part[1]) if part[0] == "stages" else part[0]
                groups[group] += self.layers.layer_counts(layer)[0]
            for key in keys:
                self.cache[key] = groups[key[0]]
        # else each part was built (and validated, stage by stage) within a valid arch
        return sum(self.cache[k] for k in keys)


# --------------------------------------------------------------------- archs


def fill(space: SearchSpace, base: Arch, kind: str, attention: str | None, knobs: dict) -> Arch:
    """``base`` with every layer of the stages offering ``kind`` of that kind, with the depth,
    width and expansion values of ``knobs`` (``{stage: (depth, width)}``, ``{name: index}``)."""
    stages = list(base.stages)
    for i, (depth, width) in knobs["stages"].items():
        spec, old = space.stages[i], base.stages[i]
        values = dict(old.choices)
        for name in spec.per_layer:  # per-layer choices follow the new depth
            values[name] = (old.layer_value(name, 0),) * depth
        values["block"] = (kind,) * depth if "block" in spec.per_layer else kind
        if attention is not None and "attention" in spec.choices:
            values["attention"] = (
                (attention,) * depth if "attention" in spec.per_layer else attention
            )
        for name, index in knobs["expansions"].items():
            allowed = spec.choices.get(name)
            if allowed:
                value = allowed[min(index, len(allowed) - 1)]
                values[name] = (value,) * depth if name in spec.per_layer else value
        stages[i] = StageArch(depth, width, values)
    return replace(base, stages=tuple(stages))


def kind_stages(space: SearchSpace, kind: str) -> tuple[int, ...]:
    return tuple(i for i, s in enumerate(space.stages) if kind in (s.blocks or (s.kind,)))


def takes_attention(space: SearchSpace, base: Arch, kind: str, stages: Sequence[int]) -> list[str]:
    """The attention kinds ``kind``'s layers take in its stages ([] when they take none): those
    of its stages when two of them give different layers (at the first size the space allows)."""
    i = next((i for i in stages if "attention" in space.stages[i].choices), None)
    names = list(space.stages[i].choices["attention"]) if i is not None else []
    if len(names) < 2:
        return names
    for knobs, _ in knob_grid(space, base, stages):
        try:
            built = [layers_of(space, fill(space, base, kind, a, knobs)) for a in names[:2]]
        except InputError:
            continue
        return names if built[0] != built[1] else []
    return []


def knob_grid(space: SearchSpace, base: Arch, stages: Sequence[int]):
    """Every (knobs, steps from the base) over the stages' depths and widths and the shared
    expansion choices."""
    per_stage = []
    for i in stages:
        spec, old = space.stages[i], base.stages[i]
        per_stage.append(
            [
                ((i, (d, w)), _steps(spec.depths, old.depth, d) + _steps(spec.widths, old.width, w))
                for d, w in itertools.product(spec.depths, spec.widths)
            ]
        )
    expansions = {}
    for name in EXPANSIONS:
        lists = [space.stages[i].choices[name] for i in stages if name in space.stages[i].choices]
        if lists:
            first = next(i for i in stages if name in space.stages[i].choices)
            now = base.stages[first].choice(name)
            at = lists[0].index(now) if now in lists[0] else 0
            expansions[name] = (max(len(v) for v in lists), at)
    names = list(expansions)
    for sizes in itertools.product(*per_stage):
        for indices in itertools.product(*(range(expansions[n][0]) for n in names)):
            steps = sum(s for _, s in sizes) + sum(
                abs(j - expansions[n][1]) for n, j in zip(names, indices, strict=True)
            )
            yield (
                {
                    "stages": dict(k for k, _ in sizes),
                    "expansions": dict(zip(names, indices, strict=True)),
                },
                steps,
            )


def _steps(values: Sequence, old, new) -> int:
    return abs(values.index(new) - values.index(old)) if old in values else 0


def candidates(
    space: SearchSpace, base: Arch, kind: str, attention: str | None, macs: StageMacs
) -> list[tuple[int, int, Arch]]:
    """(MACs, steps from the base, arch) of every valid adjustment of the kind's arch."""
    stages = kind_stages(space, kind)
    out = []
    for knobs, steps in knob_grid(space, base, stages):
        arch = fill(space, base, kind, attention, knobs)
        try:
            out.append((macs(arch), steps, arch))
        except InputError:
            continue  # a combination the space does not allow (e.g. width vs heads)
    return out


def pick_target(reachable: dict[str, list[int]], base_macs: int, tolerance: float) -> int:
    """The MAC count every kind reaches within half the tolerance, closest to the base's."""
    pools = {k: sorted(set(v)) for k, v in reachable.items()}
    values = sorted(set().union(*pools.values()))
    shared = values + [(a + b) // 2 for a, b in itertools.pairwise(values)]

    def worst(target: int) -> float:
        return max(min(abs(m - target) / target for m in _near(p, target)) for p in pools.values())

    errors = {t: worst(t) for t in shared}
    ok = [t for t, e in errors.items() if e <= tolerance / 2]
    if ok:
        return min(ok, key=lambda t: abs(t - base_macs))
    best = min(errors, key=errors.__getitem__)
    if errors[best] <= tolerance:
        return best
    ranges = ", ".join(f"{k} {min(p) / 1e6:.0f}-{max(p) / 1e6:.0f}M" for k, p in pools.items())
    raise StudyError(f"no MAC count is reachable by every kind within {tolerance:.0%} ({ranges})")


def _near(pool: list[int], target: int) -> list[int]:
    import bisect

    i = bisect.bisect_left(pool, target)
    return pool[max(i - 1, 0) : i + 1]


def choose(found: list[tuple[int, int, Arch]], target: int, tolerance: float):
    """Within half the tolerance, the arch fewest steps from the base; else the closest."""

    def error(m: int) -> float:
        return abs(m - target) / target

    close = [f for f in found if error(f[0]) <= tolerance / 2]
    if close:
        return min(close, key=lambda f: (f[1], error(f[0])))
    best = min(found, key=lambda f: error(f[0]))
    return best if error(best[0]) <= tolerance else None


def build_cases(space: SearchSpace, base: Arch, args) -> tuple[list[Case], int, list[str]]:
    """The cases at a common MAC target, the target, and a note per kind left out."""
    macs = StageMacs(space)
    kinds = [k for s in space.stages for k in (s.blocks or (s.kind,))]
    kinds = list(dict.fromkeys(k for k in kinds if not args.kinds or k in args.kinds))
    unknown = set(args.kinds or ()) - set(kinds)
    if unknown:
        raise StudyError(
            f"--kinds {', '.join(sorted(unknown))}: not in {space.name}; its kinds: "
            f"{', '.join(dict.fromkeys(k for s in space.stages for k in (s.blocks or (s.kind,))))}"
        )
    found: dict[tuple[str, str | None], list] = {}
    notes = []
    for kind in tqdm(kinds, desc="archs", unit="kind", disable=args.no_progress):
        stages = kind_stages(space, kind)
        attentions = takes_attention(space, base, kind, stages)
        if attentions and args.attentions:
            attentions = [a for a in attentions if a in args.attentions]
            if not attentions:
                notes.append(f"{kind}: none of --attentions {' '.join(args.attentions)}")
                continue
        for attention in attentions or [None]:
            options = candidates(space, base, kind, attention, macs)
            if options:
                found[kind, attention] = options
            else:
                notes.append(
                    f"{kind}: no arch of {space.name} fills stages {list(stages)} with the "
                    f"base's other choices (kernel, heads, value scale)"
                )
    if not found:
        raise StudyError(f"nothing to study: {'; '.join(notes)}")
    base_macs = macs(base)
    target = int(args.macs * 1e6) if args.macs else None
    if target is None:
        reachable = {f"{k}/{a}" if a else k: [m for m, _, _ in f] for (k, a), f in found.items()}
        target = pick_target(reachable, base_macs, args.tolerance)
    cases, missed = [], []
    for (kind, attention), options in found.items():
        chosen = choose(options, target, args.tolerance)
        if chosen is None:
            lo, hi = min(m for m, _, _ in options), max(m for m, _, _ in options)
            missed.append(f"{kind} ({lo / 1e6:.0f}-{hi / 1e6:.0f}M)")
            continue
        cases.append(Case(kind, attention, chosen[2], kind_stages(space, kind)))
    if missed:
        raise StudyError(
            f"--macs {target / 1e6:g}: not reachable within {args.tolerance:.0%} by "
            f"{', '.join(missed)}; leave --macs out to pick a common target"
        )
    return cases, target, notes


# --------------------------------------------------------------------- measuring


def time_pass(space: SearchSpace, cases: list[Case], backend, protocol, seed: int) -> list[dict]:
    """One pass: every case's model timed round-robin on ``backend`` (in a shuffled order)."""
    from predictors.backends import time_runners
    from predictors.measure import model_runner_inputs

    order = list(range(len(cases)))
    random.Random(seed).shuffle(order)
    runners = [
        backend.prepare_cached(
            cases[i].arch.to_json(),
            lambda i=i: model_runner_inputs(space, cases[i].arch, backend.batch, i),
        )
        for i in order
    ]
    timings = time_runners(runners, protocol, backend.timing_context())
    out: list[dict] = [{} for _ in cases]
    for i, timing in zip(order, timings, strict=True):
        out[i] = timing.to_dict()
    return out


def measure(space: SearchSpace, cases: list[Case], args, cells: Path) -> dict[str, list[list]]:
    """Per backend, per pass, per case: the timing summary (cached per finished pass)."""
    from predictors.backends import TimingProtocol, get_backend

    protocol = TimingProtocol(args.warmup, args.repeats, "median", min_time_ms=0.0)
    backends = {name: get_backend(name, threads=1, batch=1) for name in args.backends}
    setting = {
        "archs": [c.arch.to_json() for c in cases],
        "protocol": protocol.to_dict(),
    }
    passes: dict[str, list[list]] = {name: [] for name in backends}
    jobs = [
        (p, name)
        for p in range(args.passes)
        for name in (args.backends if p % 2 == 0 else args.backends[::-1])
    ]
    bar = tqdm(jobs, desc="passes", unit="pass", disable=args.no_progress)
    for p, name in bar:
        path = cells / f"pass-{name}-{p}-{digest({**setting, 'backend': name})}.json"
        if path.is_file():
            passes[name].append(json.loads(path.read_text())["timings"])
            continue
        bar.set_postfix_str(f"{name}, pass {p + 1}")
        timings = time_pass(space, cases, backends[name], protocol, seed=p)
        write_atomic(path, json.dumps({"backend": name, "pass": p, "timings": timings}) + "\n")
        passes[name].append(timings)
    return passes


def digest(setting: dict) -> str:
    """A short digest of a setting (stable across processes), naming its cached cells."""
    return hashlib.sha1(json.dumps(setting, sort_keys=True).encode()).hexdigest()[:10]


# --------------------------------------------------------------------- profiles


def profiles_at_hand(space: SearchSpace, paths: Sequence[str]) -> tuple[dict, list[str]]:
    """(label -> predictor) for the profiles that apply to ``space``, and a note per profile."""
    from predictors.latency import LatencyPredictor
    from predictors.tables import TABLES, import_table

    usable, notes = {}, []
    data = shared_data()
    tables = {"pixel4": "pixel4_elasticvit/pixel4_lut.json", "note10": "ofa_note10"}
    for name, info in TABLES.items():
        where = data / tables[name] if data is not None and name in tables else None
        if where is None or not where.exists():
            notes.append(f"{name} table: not at hand (no shared data folder)")
        elif info["space"] != space.name:
            notes.append(
                f"{name} table ({where}): a profile of {info['space']}, does not apply to "
                f"{space.name}"
            )
        else:
            usable[f"{name} table"] = LatencyPredictor.from_profile(
                import_table(name, where), space
            )
            notes.append(f"{name} table ({where}): applies")
    for path in paths:
        predictor = LatencyPredictor.load(path, space)  # another space's profile: InputError
        label = f"{Path(path).stem} ({predictor.profile.backend})"
        usable[label] = predictor
        notes.append(f"{path}: applies ({predictor.profile.device})")
    if not usable:
        notes.append(
            f"no profile at hand applies to {space.name}: no predicted latency (pass --profile "
            f"FILE, e.g. from `nas device measure --space {space.name} --backend onnxruntime`)"
        )
    return usable, notes


# --------------------------------------------------------------------- report


def summarise(cases, passes, predictions, target, space) -> list[dict]:
    rows = []
    for i, case in enumerate(cases):
        macs, params = count(space, case.arch)
        row = {
            "kind": case.kind,
            "attention": case.attention,
            "label": case.label,
            "stages": list(case.stages),
            "shape": shape(space, case),
            "macs": macs,
            "params": params,
            "macs_vs_target": macs / target - 1,
            "arch": case.arch.to_dict(),
            "predicted_ms": {k: float(v[i]) for k, v in predictions.items()},
        }
        for name, runs in passes.items():
            row[f"{name}_ms"] = statistics.median(r[i]["median"] for r in runs)
            row[f"{name}_pass_ms"] = [r[i]["median"] for r in runs]
        rows.append(row)
    return rows


def shape(space: SearchSpace, case: Case) -> str:
    """The filled stages' depths, widths and the expansions the kind's layers use, e.g.
    ``d1,3 w32,48 e4``."""
    stages = [case.arch.stages[i] for i in case.stages]
    text = f"d{','.join(str(s.depth) for s in stages)} w{','.join(str(s.width) for s in stages)}"
    built = layers_of(space, case.arch)
    for name, label in zip(EXPANSIONS, ("e", "mlp", "L", "de"), strict=True):
        values = {s.choice(name) for s in stages} - {None}
        if values and _matters(space, case, name, built):
            text += f" {label}{','.join(str(v) for v in sorted(values))}"
    return text


def _matters(space: SearchSpace, case: Case, name: str, built) -> bool:
    """Whether another value of choice ``name`` in the filled stages changes their layers."""
    stages = list(case.arch.stages)
    for i in case.stages:
        allowed, now = space.stages[i].choices.get(name, ()), stages[i].choice(name)
        other = next((v for v in allowed if v != now), None)
        if other is not None and not isinstance(now, tuple):
            stages[i] = StageArch(
                stages[i].depth, stages[i].width, {**dict(stages[i].choices), name: other}
            )
    try:
        return layers_of(space, replace(case.arch, stages=tuple(stages))) != built
    except InputError:
        return True


def table(rows: list[dict], backends: Sequence[str], reference: str, profiles: Sequence[str]):
    ref = next(r for r in rows if r["kind"] == reference or r["label"] == reference)
    head = ["kind", "stages", "adjusted", "MACs (M)", "vs target", "params (M)"]
    for name in backends:
        head += [f"{name} ms", f"/ {ref['label']}"]
    if len(backends) > 1:
        head.append(f"{backends[1]} / {backends[0]}")
    head += [f"{p} ms" for p in profiles]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r["label"],
            ",".join(map(str, r["stages"])),
            r["shape"],
            f"{r['macs'] / 1e6:.1f}",
            f"{r['macs_vs_target']:+.1%}",
            f"{r['params'] / 1e6:.2f}",
        ]
        for name in backends:
            cells += [f"{r[f'{name}_ms']:.2f}", f"{r[f'{name}_ms'] / ref[f'{name}_ms']:.2f}"]
        if len(backends) > 1:
            cells.append(f"{r[f'{backends[1]}_ms'] / r[f'{backends[0]}_ms']:.2f}")
        cells += [f"{r['predicted_ms'][p]:.2f}" for p in profiles]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], backends: Sequence[str], profiles: Sequence[str], title: str, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    y = np.arange(len(rows))
    height = 0.8 / max(len(backends), 1)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.8))
    for j, name in enumerate(backends):
        ax.barh(y + j * height, [r[f"{name}_ms"] for r in rows], height, label=f"{name} (measured)")
    for marker, p in zip("oxsd^v", profiles, strict=False):
        ax.scatter([r["predicted_ms"][p] for r in rows], y, marker=marker, color="k", label=p)
    ax.set_yticks(y + height * (len(backends) - 1) / 2, [r["label"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("latency (ms, batch 1, one thread; median over passes)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Writes block_kinds.md (the table, also printed), block_kinds.json (archs, MACs, every "
        "pass's timings, predictions, machine) and block_kinds.png to --out; the chosen archs and "
        "each finished pass are cached in --out/cells, so the same command resumes.",
    )
    parser.add_argument(
        "--space",
        default="mobile-zoo",
        help="built-in space whose kinds are compared (default mobile-zoo)",
    )
    parser.add_argument(
        "--base",
        default="mobilevit-xxs",
        help="preset of the space the archs start from (default mobilevit-xxs; `nas presets` lists them)",
    )
    parser.add_argument(
        "--resolution",
        type=int,
        default=224,
        help="input side in px, one of the space's resolutions (default 224)",
    )
    parser.add_argument(
        "--macs",
        type=float,
        metavar="M",
        help="common MAC target in millions (default: the count every kind reaches within half "
        "the tolerance closest to the base's)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.05,
        help="largest relative MAC deviation of an arch from the target (default 0.05 = 5%%)",
    )
    parser.add_argument(
        "--kinds", nargs="+", help="block kinds to study (default: every kind of the space)"
    )
    parser.add_argument(
        "--attentions",
        nargs="+",
        help="attention kinds to study for kinds whose layers attend (default: all of the space)",
    )
    parser.add_argument(
        "--reference",
        default="mbconv",
        help="kind (or kind/attention) whose latency the ratios divide by (default mbconv)",
    )
    parser.add_argument(
        "--backends",
        nargs="+",
        default=["onnxruntime", "torch"],
        help="measuring backends of predictors.backends, batch 1, one thread (default onnxruntime torch)",
    )
    parser.add_argument(
        "--passes",
        type=int,
        default=3,
        help="timing passes per backend; a row shows the median over passes (default 3)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=30,
        help="timed calls per arch in a pass, summarised by their median (default 30)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=10,
        help="untimed warm-up calls per arch before a pass (default 10)",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        action="append",
        default=[],
        help="device profile (JSON, of the space, covering --resolution) whose predictions are shown; repeatable",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/block_kinds"),
        help="folder of the outputs and of the cache cells/ (default runs/block_kinds)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a check: softmax only among attention kinds, 1 pass, 3 timed calls, 1 warm-up",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            if not (name == "attentions" and args.attentions):
                setattr(args, name, value)
    if not 0 < args.tolerance < 1:
        parser.error(f"--tolerance {args.tolerance}: must be between 0 and 1 (e.g. 0.05)")
    if args.passes < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--passes and --repeats must be >= 1, --warmup >= 0")
    return args


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    space = search_spaces.get(args.space)
    if args.resolution not in space.resolutions:
        raise StudyError(
            f"--resolution {args.resolution}: {space.name} takes {list(space.resolutions)}"
        )
    preset = presets.get(args.base)
    if preset.space != space.name:
        raise StudyError(f"--base {args.base} is a preset of {preset.space}, not {space.name}")
    base = replace(preset.arch, resolution=args.resolution)
    predictors, notes = profiles_at_hand(space, args.profile)
    args.out.mkdir(parents=True, exist_ok=True)
    cells = args.out / "cells"
    cells.mkdir(exist_ok=True)
    selection = {
        "space": space.to_dict(),
        "base": base.to_json(),
        "macs": args.macs,
        "tolerance": args.tolerance,
        "kinds": args.kinds,
        "attentions": args.attentions,
    }
    chosen = cells / f"archs-{digest(selection)}.json"
    if chosen.is_file():
        saved = json.loads(chosen.read_text())
        cases = [
            Case(c["kind"], c["attention"], Arch.from_dict(c["arch"]), tuple(c["stages"]))
            for c in saved["cases"]
        ]
        target, left_out = saved["target"], saved.get("left_out", [])
    else:
        cases, target, left_out = build_cases(space, base, args)
        saved = {
            "target": target,
            "left_out": left_out,
            "cases": [
                {
                    "kind": c.kind,
                    "attention": c.attention,
                    "stages": list(c.stages),
                    "arch": c.arch.to_dict(),
                }
                for c in cases
            ],
        }
        write_atomic(chosen, json.dumps(saved) + "\n")
    if not any(c.kind == args.reference or c.label == args.reference for c in cases):
        raise StudyError(
            f"--reference {args.reference}: not studied; choose one of "
            f"{', '.join(c.label for c in cases)}"
        )
    predictions = {label: p.predict([c.arch for c in cases]) for label, p in predictors.items()}
    passes = measure(space, cases, args, cells)
    rows = summarise(cases, passes, predictions, target, space)
    text = table(rows, args.backends, args.reference, list(predictors))
    from predictors.backends import machine_environment

    env = machine_environment()
    title = (
        f"{space.name} at {args.resolution} px, {target / 1e6:.1f}M MACs (+-{args.tolerance:.0%}), "
        f"base {args.base}; {env['cpu']}"
    )
    header = (
        f"{title}; batch 1, one thread; median of {args.passes} pass(es) of "
        f"{args.repeats} timed calls; ratios to {args.reference}.\n"
        + "".join(f"- {n}\n" for n in notes)
        + "".join(f"- left out: {n}\n" for n in left_out)
    )
    write_atomic(args.out / "block_kinds.md", header + "\n" + text)
    report = {
        "format": "nas-block-kinds-study",
        "version": 1,
        "space": space.name,
        "resolution": args.resolution,
        "base": args.base,
        "target_macs": target,
        "tolerance": args.tolerance,
        "reference": args.reference,
        "backends": args.backends,
        "passes": args.passes,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "profiles": notes,
        "left_out": left_out,
        "machine": env,
        "rows": rows,
    }
    write_atomic(args.out / "block_kinds.json", json.dumps(report, indent=1) + "\n")
    plot(rows, args.backends, list(predictors), title, args.out / "block_kinds.png")
    print(header + "\n" + text)
    print(
        f"wrote {args.out / 'block_kinds.md'}, block_kinds.json, block_kinds.png "
        f"({time.perf_counter() - start:.0f} s)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
