"""Complexity levels of a space and their candidate pools, built once and cached in the run folder.

A level is a band of complexity (MACs, or latency on a target device). Band edges are spaced
geometrically between the smallest and the largest arch of the space, so each level spans the same
ratio of complexity. Each level keeps a pool of candidate archs (found by drawing archs with a
random tilt toward small or large choices, so the extreme levels fill too) and its smallest arch.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nas.arch import Arch
from nas.errors import InputError
from nas.runs import write_atomic
from nas.space import SearchSpace

LEVELS_FORMAT = "nas-levels"
LEVELS_VERSION = 1

Complexity = Callable[[Arch], float]


class LevelsError(InputError):
    """Levels cannot be built (a device profile does not fit the space, too few archs)."""


# --------------------------------------------------------------------- complexity


def complexity_function(
    space: SearchSpace,
    metric: str,
    device_profile: str | None = None,
    base: SearchSpace | None = None,
) -> Complexity:
    """``arch -> float``: MACs of ``space``, or latency (ms) on a target device.

    Latency is predicted for ``base`` (the space as declared, e.g. 3 input channels and its own
    classes), since that is the model the device runs; MACs count the trained model. The device
    is a device profile (``nas device measure`` / ``import`` / ``import-table``: any space), or
    a published table as it comes: the Pixel 4 JSON table (ElasticViT space) or a folder of
    Note10 ``{res}_lookup_table.yaml`` files (Once-for-All MobileNetV3 space).
    """
    cache: dict[Arch, float] = {}
    if metric == "macs":
        from nas.graph import count

        def measure(arch: Arch) -> float:
            return float(count(space, arch)[0])
    elif metric == "latency":
        measure = _latency_function(base or space, device_profile)
    else:
        raise LevelsError(f"level metric {metric!r} is not known; choices: macs, latency")

    def cached(arch: Arch) -> float:
        if arch not in cache:
            cache[arch] = measure(arch)
        return cache[arch]

    return cached


def _latency_function(space: SearchSpace, profile: str | None) -> Complexity:
    from predictors import lut

    if not profile:
        raise LevelsError("latency levels need a device profile (a latency table)")
    path = Path(profile)
    if not path.exists():
        raise LevelsError(f"device profile {profile} does not exist")
    if path.is_dir():
        tables = lut.load_note10_tables(path)

        def measure(arch: Arch) -> float:
            if arch.resolution not in tables:
                raise LevelsError(
                    f"{profile} has no table for resolution {arch.resolution}; "
                    f"it covers {sorted(tables)}"
                )
            return _lookup(lut, lut.note10_keys(space, arch), tables[arch.resolution], profile)
    elif (device := _device_profile(path)) is not None:
        return _profile_latency(space, device, path)
    else:
        table = lut.load_pixel4_table(path)

        def measure(arch: Arch) -> float:
            return _lookup(lut, lut.pixel4_keys(space, arch), table, profile)

    return measure


def _device_profile(path: Path):
    """The device profile in ``path``, or None when it is not one (then a Pixel 4 table)."""
    from predictors.profile import PROFILE_FORMAT, DeviceProfile

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None  # the table reader names the problem
    if isinstance(data, dict) and data.get("format") == PROFILE_FORMAT:
        return DeviceProfile.from_dict(data, str(path))
    return None


def _profile_latency(space: SearchSpace, device, path: Path) -> Complexity:
    """Predicted latency on the device of a profile, for archs of ``space``."""
    from predictors.latency import LatencyPredictor
    from predictors.profile import ProfileSpaceError

    try:
        predictor = LatencyPredictor.from_profile(device, space)
    except ProfileSpaceError as err:
        raise ProfileSpaceError(f"--device-profile {path}: {err}") from None
    allowed = predictor.resolutions

    def measure(arch: Arch) -> float:
        if arch.resolution not in allowed:
            raise LevelsError(
                f"device profile {path} was measured at resolutions {list(allowed)}, not "
                f"{arch.resolution}; measure it at every resolution of {space.name!r} "
                f"({list(space.resolutions)}) for latency levels"
            )
        return float(predictor.predict([arch])[0])

    return measure


def _lookup(lut, keys: list[str], table: dict[str, float], profile: str) -> float:
    try:
        return lut.table_latency(keys, table)
    except lut.MissingKeysError as err:
        raise LevelsError(f"device profile {profile} does not cover this space: {err}") from None
    except TypeError as err:
        raise LevelsError(f"device profile {profile} does not fit this space: {err}") from None


# --------------------------------------------------------------------- levels


@dataclass
class Levels:
    """Band edges (``len(edges) == count + 1``) and each level's pool, smallest first."""

    metric: str
    edges: list[float]
    pools: list[list[Arch]]
    values: list[list[float]]
    key: dict

    @property
    def count(self) -> int:
        return len(self.pools)

    def level_of(self, value: float) -> int | None:
        """The level whose band holds ``value`` (edges belong to the band above, the top edge
        to the top band), or None outside all bands."""
        if value < self.edges[0] or value > self.edges[-1]:
            return None
        for k in range(self.count):
            if value < self.edges[k + 1]:
                return k
        return self.count - 1

    def smallest(self, level: int) -> Arch:
        return self.pools[level][0]

    def to_dict(self) -> dict:
        return {
            "format": LEVELS_FORMAT,
            "version": LEVELS_VERSION,
            "key": self.key,
            "metric": self.metric,
            "edges": self.edges,
            "levels": [
                [{"arch": a.to_dict(), "value": v} for a, v in zip(pool, vals, strict=True)]
                for pool, vals in zip(self.pools, self.values, strict=True)
            ],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Levels:
        pools = [[Arch.from_dict(e["arch"]) for e in level] for level in data["levels"]]
        values = [[float(e["value"]) for e in level] for level in data["levels"]]
        return cls(data["metric"], [float(e) for e in data["edges"]], pools, values, data["key"])


def build_levels(
    space: SearchSpace,
    complexity: Complexity,
    *,
    count: int,
    draws: int,
    pool_size: int,
    seed: int,
    metric: str = "macs",
    key: dict | None = None,
) -> Levels:
    """``count`` geometric bands between the smallest and largest arch, each with a pool of at most
    ``pool_size`` distinct archs from ``draws`` tilted draws. Empty bands are merged into their
    neighbours, so fewer levels may come back than asked."""
    low, high = complexity(space.min_arch()), complexity(space.max_arch())
    if not 0 < low < high:
        raise LevelsError(f"the space's complexity range [{low}, {high}] cannot be cut into levels")
    ratio = (high / low) ** (1 / count)
    edges = [low * ratio**k for k in range(count)] + [high]
    rng = random.Random(seed)
    found: dict[Arch, float] = {space.min_arch(): low, space.max_arch(): high}
    for _ in range(draws):
        arch = tilted_sample(space, rng, rng.uniform(-3.0, 3.0))
        if arch not in found:
            found[arch] = complexity(arch)
    members: list[list[tuple[float, Arch]]] = [[] for _ in range(count)]
    probe = Levels(metric, edges, [[]] * count, [[]] * count, {})
    for arch, value in found.items():
        level = probe.level_of(value)
        if level is not None:
            members[level].append((value, arch))
    # Merge empty bands into the band below (or above, for the first).
    k = 0
    while k < len(members):
        if not members[k] and len(members) > 1:
            del members[k]
            del edges[k + 1 if k + 1 < len(edges) - 1 else k]
            continue
        k += 1
    pools, values = [], []
    for band in members:
        smallest = min(band, key=lambda e: (e[0], e[1].to_json()))
        rest = [e for e in band if e is not smallest]
        random.Random(seed + 1).shuffle(rest)
        chosen = [smallest] + rest[: pool_size - 1]
        chosen = [smallest] + sorted(chosen[1:], key=lambda e: e[0])
        pools.append([a for _, a in chosen])
        values.append([v for v, _ in chosen])
    return Levels(metric, edges, pools, values, key or {})


def tilted_sample(space: SearchSpace, rng: random.Random, tilt: float) -> Arch:
    """An arch whose numeric choices lean toward large values (tilt > 0) or small ones (< 0)."""
    slots = []
    for dim in space.dimensions:
        values = dim.values
        if len(values) > 1 and all(isinstance(v, int | float) for v in values):
            order = sorted(range(len(values)), key=lambda i: values[i])
            weights = [math.exp(tilt * rank / (len(values) - 1)) for rank in range(len(values))]
            slots.append(values[rng.choices(order, weights=weights)[0]])
        else:
            slots.append(rng.choice(values))
    return space.assemble(slots)


def load_or_build_levels(path: Path | None, key: dict, build: Callable[[], Levels]) -> Levels:
    """The levels cached at ``path`` when they were built with the same ``key``, else built and
    cached (written atomically)."""
    if path is not None and path.is_file():
        try:
            data = json.loads(path.read_text())
            if data.get("format") == LEVELS_FORMAT and data.get("key") == key:
                return Levels.from_dict(data)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            pass  # a stale or damaged cache is rebuilt
    levels = build()
    levels.key = key
    if path is not None:
        write_atomic(path, json.dumps(levels.to_dict()) + "\n")
    return levels
