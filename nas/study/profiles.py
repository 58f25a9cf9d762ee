"""The device profiles of a study, opened as latency predictors of the study's space."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nas.errors import InputError
from nas.space import SearchSpace


class StudyProfileError(InputError):
    """A ``--device`` profile cannot be used for the study's space."""


@dataclass
class StudyDevice:
    """One ``--device`` profile: a short label (its file name), what it is, its predictor."""

    label: str
    path: Path
    description: str
    backend: str
    source: str
    predictor: object

    @property
    def key(self) -> str:
        return f"latency@{self.label}"

    @property
    def axis(self) -> str:
        return f"latency on {self.label} (ms)"

    def describe(self) -> dict:
        return {
            "label": self.label,
            "profile": str(self.path),
            "device": self.description,
            "backend": self.backend,
            "source": self.source,
            "resolutions": list(self.predictor.resolutions),
        }


def open_devices(paths: Sequence[str | Path], space: SearchSpace) -> list[StudyDevice]:
    """Each profile as a predictor of ``space``; a profile of another space, an unreadable or
    unfinished one raises :class:`StudyProfileError` naming it."""
    from predictors.latency import LatencyPredictor
    from predictors.profile import DeviceProfile

    if not paths:
        raise StudyProfileError("give at least one --device PROFILE.json")
    devices: list[StudyDevice] = []
    for path in paths:
        path = Path(path)
        try:
            profile = DeviceProfile.load(path)
            profile.check_space(space)
        except InputError as err:
            raise StudyProfileError(f"--device {path}: {err}") from None
        if not profile.complete:
            raise StudyProfileError(
                f"--device {path}: the profile's measurement is unfinished; rerun the "
                "`nas device measure` command that wrote it to complete it"
            )
        predictor = LatencyPredictor.from_profile(profile, space)
        label = path.stem
        taken = {d.label for d in devices}
        suffix = 2
        while label in taken:
            label, suffix = f"{path.stem}-{suffix}", suffix + 1
        devices.append(
            StudyDevice(label, path, profile.device, profile.backend, profile.source, predictor)
        )
    return devices


def common_resolutions(devices: Sequence[StudyDevice], space: SearchSpace) -> tuple[int, ...]:
    """The space's resolutions every profile was measured at."""
    allowed = tuple(
        r for r in space.resolutions if all(r in d.predictor.resolutions for d in devices)
    )
    if not allowed:
        measured = "; ".join(f"{d.label}: {list(d.predictor.resolutions)}" for d in devices)
        raise StudyProfileError(
            f"the profiles share no input resolution ({measured}); measure them at a common one"
        )
    return allowed
