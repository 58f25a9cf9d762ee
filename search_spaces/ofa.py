"""Once-for-All MobileNetV3 subnets: OFA's ``net.config`` -> an :class:`Arch` of ``ofa-mbv3``.

OFA publishes its specialised subnets as a JSON ``net.config``: ``first_conv``, a list of
``blocks`` (each with a ``mobile_inverted_conv``; the first one is the expand-1 block right after
the stem), ``final_expand_layer``, ``feature_mix_layer`` and ``classifier``. The space (width 1.2
``ofa-mbv3`` or width 1.0 ``ofa-mbv3-w1.0``) is picked by the widths. The input resolution is not
part of ``net.config`` and is passed separately; where the subnet's MAC count is published (OFA's
model zoo table, :data:`NOTE10_SUBNET_MACS`), :func:`resolution_for_macs` recovers it. The
classifier's class count is not part of an arch (see :meth:`SearchSpace.with_task`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import search_spaces
from nas.arch import Arch, ArchError, StageArch, StemArch
from nas.errors import InputError
from nas.space import SearchSpace

#: The spaces an OFA MobileNetV3 config can belong to.
OFA_SPACES = ("ofa-mbv3", "ofa-mbv3-w1.0")
_ACTIVATIONS = {"relu": "relu", "h_swish": "hswish"}

#: MACs (millions) of OFA's published Samsung Note10 subnets, as Once-for-All's model zoo table
#: lists them (the shared data names the folders with "-" for "@").
NOTE10_SUBNET_MACS = {
    "note10_lat@64ms_top1@80.2_finetune@75": 743,
    "note10_lat@50ms_top1@79.7_finetune@75": 554,
    "note10_lat@41ms_top1@79.3_finetune@75": 457,
    "note10_lat@30ms_top1@78.4_finetune@75": 339,
    "note10_lat@22ms_top1@76.6_finetune@25": 237,
    "note10_lat@16ms_top1@75.5_finetune@25": 163,
    "note10_lat@11ms_top1@73.6_finetune@25": 110,
    "note10_lat@8ms_top1@71.4_finetune@25": 79,
}


class OfaConfigError(InputError):
    """A ``net.config`` is malformed or not a subnet of an OFA MobileNetV3 space."""


def arch_from_ofa_net_config(config: str | Path | Mapping[str, Any], resolution: int = 224) -> Arch:
    """Parse OFA's ``net.config`` (a path or the loaded JSON) into a validated :class:`Arch`."""
    where = str(config) if isinstance(config, str | Path) else "net.config"
    data = _load(config) if isinstance(config, str | Path) else config
    try:
        return _parse(data, resolution)
    except (OfaConfigError, ArchError) as err:
        raise OfaConfigError(f"{where}: {err}") from None
    except (KeyError, TypeError, AttributeError) as err:
        raise OfaConfigError(
            f"{where}: malformed OFA net.config ({type(err).__name__}: {err})"
        ) from None


def resolution_for_macs(
    arch: Arch, macs_millions: float, resolutions: Iterable[int] = range(128, 321, 4)
) -> int:
    """The input resolution (of ``resolutions``; OFA's are multiples of 4) at which ``arch`` has
    the MAC count closest to ``macs_millions``: a published MAC count pins down the resolution
    a ``net.config`` leaves out."""
    from nas.graph import count

    grid = tuple(resolutions)
    if not grid:
        raise OfaConfigError("resolution_for_macs needs at least one candidate resolution")
    space = dataclasses.replace(search_spaces.get(arch.space), resolutions=grid)
    counted = [count(space, dataclasses.replace(arch, resolution=r))[0] / 1e6 for r in grid]
    errors = [abs(m - macs_millions) for m in counted]
    return grid[errors.index(min(errors))]


def _load(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as err:
        raise OfaConfigError(f"cannot read OFA net.config {path}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise OfaConfigError(f"{path} is not valid JSON: {err}") from None


def _parse(data: Any, resolution: int) -> Arch:
    if not isinstance(data, Mapping):
        raise OfaConfigError(f"a net.config must be a JSON object, got {type(data).__name__}")
    required = ("first_conv", "blocks", "final_expand_layer", "feature_mix_layer")
    missing = [key for key in required if key not in data]
    if missing:
        raise OfaConfigError(f"missing field(s) {missing}; is this an OFA MobileNetV3 net.config?")
    convs = [b["mobile_inverted_conv"] for b in data["blocks"]]
    if not convs:
        raise OfaConfigError("blocks is empty")
    stem_width = data["first_conv"]["out_channels"]
    first, rest = convs[0], convs[1:]
    shape = (first["expand_ratio"], first["stride"], first["in_channels"], first["out_channels"])
    if shape != (1, 1, stem_width, stem_width):
        raise OfaConfigError(
            f"blocks[0] must be the expand-1, stride-1 block of width {stem_width}; got {_show(first)}"
        )

    # Consecutive blocks with the same output width form a stage.
    stages: list[list[Mapping[str, Any]]] = []
    for conv in rest:
        if stages and conv["out_channels"] == stages[-1][0]["out_channels"]:
            stages[-1].append(conv)
        else:
            stages.append([conv])
    widths = [stage[0]["out_channels"] for stage in stages]
    head = (data["final_expand_layer"]["out_channels"], data["feature_mix_layer"]["out_channels"])
    space = _pick_space(stem_width, widths, head)

    arch_stages = []
    for i, (spec, blocks) in enumerate(zip(space.stages, stages, strict=True)):
        if len(blocks) not in spec.depths:
            raise OfaConfigError(
                f"stage {i} has {len(blocks)} blocks; {space.name} allows depths {list(spec.depths)}"
            )
        for k, conv in enumerate(blocks):
            expected = (spec.stride if k == 0 else 1, spec.se, spec.activation)
            got = (conv["stride"], bool(conv["use_se"]), _ACTIVATIONS.get(conv["act_func"]))
            if got != expected:
                raise OfaConfigError(
                    f"stage {i} block {k} has (stride, se, activation) = {got}; "
                    f"{space.name} has {expected}"
                )
        arch_stages.append(
            StageArch(
                depth=len(blocks),
                width=widths[i],
                kernel=tuple(conv["kernel_size"] for conv in blocks),
                expand_ratio=tuple(_int_if_whole(conv["expand_ratio"]) for conv in blocks),
            )
        )
    arch = Arch(space.name, resolution, StemArch(width=stem_width, depth=1), tuple(arch_stages))
    return space.validate(arch)


def _pick_space(stem_width: int, widths: list[int], head: tuple[int, int]) -> SearchSpace:
    found = (stem_width, widths, head)
    described = []
    for name in OFA_SPACES:
        space = search_spaces.get(name)
        own = (
            space.stem.widths[0],
            [spec.widths[0] for spec in space.stages],
            (space.head.expand_width, space.head.feature_width),
        )
        if own == found:
            return space
        described.append(f"{name}: {_widths(*own)}")
    raise OfaConfigError(
        f"widths {_widths(*found)} match no OFA MobileNetV3 space ({'; '.join(described)})"
    )


def _widths(stem: int, stages: list[int], head: tuple[int, int]) -> str:
    return f"stem {stem}, stages {stages}, head {head[0]} -> {head[1]}"


def _show(conv: Mapping[str, Any]) -> str:
    keys = ("in_channels", "out_channels", "stride", "expand_ratio")
    return ", ".join(f"{k}={conv.get(k)!r}" for k in keys)


def _int_if_whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value
