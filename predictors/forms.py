"""Revisions of what the latency units time, so that a profile timed in an older form is found.

A kernel's key names its unit(s) and features, not the module a backend ran for it. When a
unit's exported form changes (a constant folded in, a gather removed), the same key times other
work, and an older profile would predict the older form without a sign. Each such change raises
the unit's revision here; a measured or suite profile records the revisions it timed
(``unit_forms``; a profile without the field timed revision 1 of every unit), and a kernel whose
unit revision differs from this version's is *stale*: reported when the profile is opened, and
refused when a measurement would add to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# unit -> (revision, what that revision changed). Units not listed are at revision 1.
UNIT_FORMS: dict[str, tuple[int, str]] = {
    "attn-softmax": (2, "the relative-position bias held as a constant, as exported"),
    "cga-head": (2, "the relative-position bias held as a constant, as exported"),
}


def current() -> dict[str, int]:
    """The revisions this version times, as a profile records them."""
    return {unit: revision for unit, (revision, _) in sorted(UNIT_FORMS.items())}


def stale_units(recorded: Mapping[str, int], kinds: Iterable[str]) -> dict[str, int]:
    """For kernels of ``kinds`` (``+``-joined unit names) timed at the ``recorded`` revisions:
    how many involve each unit whose revision differs from this version's."""
    counts: dict[str, int] = {}
    for kind in kinds:
        for unit in sorted(set(kind.split("+"))):
            if unit in UNIT_FORMS and recorded.get(unit, 1) != UNIT_FORMS[unit][0]:
                counts[unit] = counts.get(unit, 0) + 1
    return counts


def stale_text(recorded: Mapping[str, int], counts: Mapping[str, int]) -> str:
    """What :func:`stale_units` found, in words: per unit, the kernels and both revisions."""
    parts = []
    for unit, n in sorted(counts.items()):
        revision, change = UNIT_FORMS[unit]
        parts.append(
            f"{n} {unit} kernel(s) at revision {recorded.get(unit, 1)} (this version times "
            f"revision {revision}: {change})"
        )
    return "; ".join(parts)


def check_recorded(value: object, where: str) -> dict[str, int]:
    """A profile's ``unit_forms`` field as read from a file (ValueError unless unit -> int)."""
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 1
        for k, v in value.items()
    ):
        raise ValueError(f"{where}: unit_forms must map unit names to revisions (integers >= 1)")
    return dict(value)
