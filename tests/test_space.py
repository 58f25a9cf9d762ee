"""Search-space grammar, Arch validation and JSON, sampling, mutation, encoding, size."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys

import pytest
import yaml

import search_spaces
from nas.arch import Arch, ArchError
from nas.space import SearchSpace, SpaceError

BUILTIN = search_spaces.names()


def test_registry_lists_the_builtin_spaces():
    assert {"elasticvit", "ofa-mbv3", "hybrid-tiny"} <= set(BUILTIN)
    for name in BUILTIN:
        assert search_spaces.get(name).name == name


def test_unknown_space_names_the_valid_ones():
    with pytest.raises(SpaceError, match="unknown space 'nope'.*elasticvit"):
        search_spaces.get("nope")


def test_user_space_from_yaml(tmp_path, tiny_space):
    from tests.conftest import TINY_SPACE

    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(TINY_SPACE))
    space = search_spaces.get(str(path))
    assert space == tiny_space
    assert space.validate(space.sample(0))


CASCADED = {
    "blocks": ["transformer", "efficientvit_msra"],
    "depths": [1],
    "widths": [24],
    "head_dim": 4,
    "mlp_ratios": [2],
}


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"resolutions": []}, "resolutions"),
        ({"stages": [{"kind": "mlp"}]}, r"stages\[0\].kind = 'mlp' is not allowed; choices"),
        ({"head": {"feature_width": 8, "expand_ratio": 2, "expand_width": 8}}, "one of expand_"),
        ({"head": {"expand_ratio": 2}}, "feature_width is missing"),
        ({"head": {"feature_width": 8, "norm": "groupnorm"}}, "head.norm = 'groupnorm'"),
        ({"colour": "red"}, r"unknown key\(s\) \['colour'\]"),
        # every kind of a stage checks it: under separable attention cascaded heads split the
        # width into multiples of head_dim (heads that do not divide the width are rounded down)
        (
            {
                "stages": [
                    {**CASCADED, "widths": [24, 26], "heads": [2], "attentions": ["separable"]}
                ]
            },
            r"separable attention needs .* head_dim = 4, .*not so for \[26\]",
        ),
    ],
)
def test_malformed_space_is_refused_with_the_key(patch, message):
    from tests.conftest import TINY_SPACE

    with pytest.raises(SpaceError, match=message):
        SearchSpace.from_dict({**TINY_SPACE, **patch})


def _brute_force_size(space: SearchSpace) -> int:
    """Count archs by enumerating every combination (only for tiny spaces)."""
    seen = set()
    for values in itertools.product(*(d.values for d in space.dimensions)):
        seen.add(space._assemble(values))
    return len(seen)


def test_size_is_exact(tiny_space):
    assert tiny_space.size() == _brute_force_size(tiny_space)
    assert isinstance(search_spaces.get("elasticvit").size(), int)


@pytest.mark.parametrize("name", BUILTIN)
def test_samples_min_and_max_are_valid(name):
    space = search_spaces.get(name)
    rng = random.Random(0)
    for arch in [space.min_arch(), space.max_arch(), *(space.sample(rng) for _ in range(50))]:
        assert space.validate(arch) is arch
    assert space.min_arch().stages[0].depth == min(space.stages[0].depths)
    assert space.max_arch().stages[-1].width == max(space.stages[-1].widths)


@pytest.mark.parametrize("name", BUILTIN)
def test_sampling_mutation_and_crossover_are_deterministic_under_a_seed(name):
    space = search_spaces.get(name)
    first = [space.sample(random.Random(7)) for _ in range(2)]
    assert first[0] == first[1]
    a, b = space.sample(1), space.sample(2)
    assert space.mutate(a, random.Random(3), 0.5) == space.mutate(a, random.Random(3), 0.5)
    assert space.crossover(a, b, random.Random(4)) == space.crossover(a, b, random.Random(4))


def test_mutation_and_crossover_stay_in_the_space_and_move(tiny_space):
    rng = random.Random(0)
    changed = 0
    for _ in range(200):
        a, b = tiny_space.sample(rng), tiny_space.sample(rng)
        child = tiny_space.mutate(a, rng, prob=0.3)
        tiny_space.validate(child)
        changed += child != a
        mixed = tiny_space.crossover(a, b, rng)
        tiny_space.validate(mixed)
        # every stage of a child comes from one of its parents where they agree
        for x, y, z in zip(a.stages, b.stages, mixed.stages, strict=True):
            if x.width == y.width:
                assert z.width == x.width
    assert changed > 100


def test_mutate_with_zero_probability_is_identity(tiny_space):
    arch = tiny_space.sample(5)
    assert tiny_space.mutate(arch, 1, prob=0.0) == arch


def test_encoding_is_fixed_length_and_injective(tiny_space):
    rng = random.Random(0)
    archs = {tiny_space.sample(rng) for _ in range(300)}
    vectors = tiny_space.encode_many(sorted(archs, key=lambda a: a.to_json()))
    assert vectors.shape == (len(archs), tiny_space.encoding_length)
    assert len({v.tobytes() for v in vectors}) == len(archs)


@pytest.mark.parametrize("name", BUILTIN)
def test_arch_json_round_trip_and_hash(name, tmp_path):
    space = search_spaces.get(name)
    arch = space.sample(11)
    again = Arch.from_json(arch.to_json())
    assert again == arch and hash(again) == hash(arch)
    path = tmp_path / "arch.json"
    arch.save(path)
    assert Arch.load(path) == arch
    assert json.loads(path.read_text())["format"] == "nas-arch"


def test_invalid_arch_error_names_field_value_and_choices():
    space = search_spaces.get("hybrid-tiny")
    data = space.sample(0).to_dict()
    data["stages"][2]["width"] = 40
    with pytest.raises(
        ArchError, match=r"stages\[2\].width = 40 is not allowed; choices: \[32, 48\]"
    ):
        space.validate(Arch.from_dict(data))
    data = space.sample(0).to_dict()
    data["resolution"] = 31
    with pytest.raises(ArchError, match=r"resolution = 31 is not allowed; choices: \[16, 24, 32\]"):
        space.validate(Arch.from_dict(data))
    data = space.sample(0).to_dict()
    data["stages"][0]["attention"] = "softmax"
    with pytest.raises(
        ArchError, match=r"stages\[0\].attention .* not a choice of this conv stage"
    ):
        space.validate(Arch.from_dict(data))


def test_per_layer_choices_need_one_value_per_layer():
    space = search_spaces.get("ofa-mbv3")
    data = space.sample(0).to_dict()
    data["stages"][0]["kernel"] = 3
    with pytest.raises(ArchError, match=r"stages\[0\].kernel = 3 must be a list of \d values"):
        space.validate(Arch.from_dict(data))


@pytest.mark.parametrize(
    "text, message",
    [
        ("{", "is not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (
            '{"space": "x", "resolution": "big", "stem": {"width": 8}, "stages": [{"depth": 1, "width": 8}]}',
            "resolution = 'big' must be an integer",
        ),
        (
            '{"space": "x", "resolution": 8, "stem": {"width": 8}, "stages": [{"depth": 1}]}',
            r"stages\[0\].width is missing",
        ),
        ('{"format": "nas-arch", "version": 9}', "version = 9 is not supported"),
    ],
)
def test_malformed_arch_json(text, message):
    with pytest.raises(ArchError, match=message):
        Arch.from_json(text)


def test_space_module_does_not_import_torch():
    code = (
        "import sys, nas.space, nas.arch, nas.layers, nas.search, nas.graph, nas.blocks, "
        "search_spaces; search_spaces.get('hybrid-tiny').sample(0); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
