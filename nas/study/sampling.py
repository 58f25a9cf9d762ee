"""The archs a study looks at: stratified over the space's complexity range, plus the smallest
and largest arch and any archs given (those a training run's searches evaluated).

Uniform draws crowd the middle of a space's MACs range; the study wants every size. A pool of
uniform and size-tilted draws (:meth:`Decisions.tilted`) is cut into bands of equal width in
log-MACs between the smallest and largest arch, and the sample takes the same number from every
band (bands with too few archs give all they have; the rest is spread over the others).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nas.errors import InputError
from nas.study.decisions import Decisions

#: Complexity bands of the stratified sample.
BANDS = 20
#: Pool drawn per sampled arch.
POOL_FACTOR = 4


@dataclass(frozen=True)
class Sample:
    """Rows of a study and where each came from (``sample``, ``smallest``, ``largest``, ``run``)."""

    index: np.ndarray
    origin: list[str]


def stratified(
    decisions: Decisions,
    macs_of: Callable[[np.ndarray], np.ndarray],
    n: int,
    seed: int = 0,
    extra: dict[str, np.ndarray] | None = None,
) -> Sample:
    """The smallest and the largest arch, ``n`` archs stratified over log-MACs, then every row
    of ``extra`` (origin name -> rows); duplicates keep their first place."""
    if n < 1:
        raise InputError(f"--n {n}: the study needs at least 1 arch")
    rng = np.random.default_rng(seed)
    pool = np.concatenate(
        [decisions.uniform(rng, POOL_FACTOR * n // 2 + 1), decisions.tilted(rng, POOL_FACTOR * n)]
    )
    _, first = np.unique(decisions.canonical(pool), axis=0, return_index=True)
    pool = pool[np.sort(first)]
    ends = decisions.ends(seed)
    low, high = np.log(np.maximum(macs_of(ends).astype(float), 1.0))
    band = np.clip(
        ((np.log(np.maximum(macs_of(pool).astype(float), 1.0)) - low) / max(high - low, 1e-12))
        * BANDS,
        0,
        BANDS - 1,
    ).astype(int)
    chosen = _equal_per_band(band, n, rng)
    rows = [ends[:1], ends[1:], pool[chosen]]
    origin = ["smallest", "largest"] + ["sample"] * len(chosen)
    for name, extra_rows in (extra or {}).items():
        rows.append(np.asarray(extra_rows, dtype=np.int32).reshape(-1, len(decisions.dims)))
        origin += [name] * len(rows[-1])
    index = np.concatenate(rows).astype(np.int32)
    _, first = np.unique(decisions.canonical(index), axis=0, return_index=True)
    keep = np.sort(first)
    return Sample(index[keep], [origin[i] for i in keep])


def _equal_per_band(band: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Pool positions: ``n`` in all (or the whole pool), as equal per band as the bands allow."""
    members = [rng.permutation(np.flatnonzero(band == b)) for b in range(BANDS)]
    quota = np.zeros(BANDS, dtype=int)
    left = min(n, len(band))
    while left > 0:
        open_bands = [b for b in range(BANDS) if len(members[b]) > quota[b]]
        share = max(1, left // len(open_bands))
        for b in open_bands:
            take = min(share, len(members[b]) - quota[b], left)
            quota[b] += take
            left -= take
            if left == 0:
                break
    return np.sort(np.concatenate([members[b][: quota[b]] for b in range(BANDS)]))
