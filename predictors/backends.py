"""Measurement backends and the timing protocol.

A backend turns a torch module (a kernel or a whole model, built from the static blocks) into a
zero-argument callable that runs one inference, and describes the software it runs on:

.. code-block:: python

    class Backend(Protocol):
        name: str        # registry name, stored in device profiles
        threads: int     # intra-op threads
        batch: int       # batch size of every input
        precision: str   # "fp32", or "int8" (quantized kernels) where the backend has it
        def prepare(self, module: nn.Module, inputs: tuple[Tensor, ...]) -> Callable[[], object]
        def prepare_cached(self, key: str, build: Callable[[], tuple[nn.Module, tuple]])
            -> Callable[[], object]     # same, reusing a conversion made earlier for ``key``
        def timing_context(self) -> ContextManager   # entered around every timing loop
        def environment(self) -> dict                # library versions, threads, batch, ...
        # optional: convert (key, build) pairs in ``jobs`` worker processes before timing
        def convert_ahead(self, modules, jobs: int, progress: bool) -> None

Four backends are registered: ``torch`` (eager, CPU, ``torch.inference_mode``; fp32 only),
``onnxruntime`` (CPU execution provider; the module is exported with the same settings as
:func:`nas.extract.export_onnx`; int8 through :mod:`predictors.qdq`), ``executorch``
(XNNPACK-delegated programs, :mod:`predictors.executorch_backend`; int8 through PT2E) and
``tflite`` (LiteRT flatbuffers on XNNPACK, :mod:`predictors.tflite_backend`; int8 through PT2E).
To add one (Core ML, ...), implement the protocol -- ``prepare`` converts the module and returns a callable
that invokes it once -- in a module of its own and call :func:`register_backend` (with a
:func:`lazy` factory, the module is imported only when the backend is used); every command then
accepts ``--backend NAME``. Devices that cannot run Python (phones) are measured through
``nas device export-suite`` / ``nas device import``.

Timing protocol (:func:`time_runners`): each runner is called ``warmup`` times, then the runners
of a batch are called round-robin ``repeats`` times (more for runners of a few microseconds, see
:class:`TimingProtocol`), each call timed alone with
``time.perf_counter_ns`` and the garbage collector off, so that a burst of load from another
process spreads over many measurements instead of spoiling a few. With ``rewarm`` (the default
for new profiles), each timed call follows an untimed call of the same runner: the timed call
finds the runner's weights and buffers in cache, as a model run on its own over and over does,
rather than the previous runner's (hybrid-tiny models timed round-robin in chunks of 8 measured
26-30% slower than timed alone, and their times depended on their neighbours; with the re-warm
call, 8%). A measurement keeps the median, the quartiles and the minimum; the profile's
``statistic`` names the one the predictor uses (``nas device measure`` takes the minimum).

A shared virtual machine switches between speeds on a scale of seconds (on a 2-vCPU EPYC VM a
convolution ran at 67 us for a second, at 100-130 us the next, with no steal time: a neighbour
on the same core), so the minimum of a runner's calls is only repeatable when its calls are spread
over enough wall time to include a fast spell. ``min_span_ms`` keeps a batch's round-robin going
until that much time has passed since its first timed call; :class:`ChunkSizer` fills batches of
fast runners until their round-robin lasts about that long anyway, so that the span costs
nothing where runners are many. Timed in batches of 8 (under a second each), the calibration
subnets of a hybrid-zoo 32 px profile timed again by the validation came out at 0.76-1.11 times
the measuring job's times (10th-90th percentile); with 5 s spans, at 0.96-1.11 and 0.99-1.10.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import math
import os
import platform
import tempfile
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from nas.errors import InputError, WorkFailed
from nas.runs import replace_atomic

STATISTICS = ("median", "q25", "min", "mean")
#: Kernel precisions a backend may time: fp32, or int8 (quantized kernels) where it has them.
PRECISIONS = ("fp32", "int8")

Runner = Callable[[], object]


class UnknownBackendError(InputError):
    """No backend of that name; the message lists the registered ones."""


class ProtocolError(InputError):
    """Timing protocol settings out of range."""


# --------------------------------------------------------------------- timing


@dataclass(frozen=True)
class TimingProtocol:
    """How a runner is timed: warm-up calls, timed calls, and the statistic that summarises them.

    ``repeats`` is a minimum: a runner faster than ``min_time_ms / repeats`` is called until its
    timed calls add up to ``min_time_ms`` (at most ``max_factor * repeats`` calls), so that
    microsecond kernels get enough samples to rise above timer and scheduling noise.
    ``min_span_ms``: the round-robin goes on, every runner in every round, until at least this
    much wall time has passed since its first timed call (see the module docstring).
    """

    warmup: int = 10
    repeats: int = 30
    statistic: str = "median"
    min_time_ms: float = 40.0
    max_factor: int = 20
    rewarm: bool = True
    min_span_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise ProtocolError(f"warmup = {self.warmup} must be >= 0")
        if self.repeats < 1:
            raise ProtocolError(f"repeats = {self.repeats} must be >= 1")
        for name in ("min_time_ms", "min_span_ms"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ProtocolError(f"{name} = {value} must be a finite number >= 0")
        if self.statistic not in STATISTICS:
            raise ProtocolError(
                f"statistic = {self.statistic!r} is not supported; choices: {', '.join(STATISTICS)}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "warmup": self.warmup,
            "repeats": self.repeats,
            "statistic": self.statistic,
            "min_time_ms": self.min_time_ms,
            "rewarm": self.rewarm,
            "min_span_ms": self.min_span_ms,
        }

    def repeats_for(self, estimate_ms: float) -> int:
        """Timed calls for a runner taking about ``estimate_ms`` per call."""
        wanted = math.ceil(self.min_time_ms / max(estimate_ms, 1e-6))
        return int(min(max(self.repeats, wanted), self.repeats * self.max_factor))


@dataclass(frozen=True)
class Timing:
    """Summary of the timed calls of one runner, in milliseconds."""

    median: float
    q25: float
    q75: float
    min: float
    mean: float
    repeats: int

    @classmethod
    def from_samples(cls, samples_ns: Sequence[int]) -> Timing:
        ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
        q25, median, q75 = np.percentile(ms, [25, 50, 75])
        return cls(
            float(median), float(q25), float(q75), float(ms.min()), float(ms.mean()), len(ms)
        )

    @classmethod
    def exact(cls, ms: float, repeats: int = 1) -> Timing:
        """A timing known only by one number (for instance imported from elsewhere)."""
        return cls(ms, ms, ms, ms, ms, repeats)

    def value(self, statistic: str = "median") -> float:
        return float(getattr(self, statistic))

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        return (self.q75 - self.q25) / self.median if self.median > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "median": self.median,
            "q25": self.q25,
            "q75": self.q75,
            "min": self.min,
            "mean": self.mean,
            "repeats": self.repeats,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Timing:
        """A timing read from a file; every time must be a finite number >= 0 (ValueError)."""
        median = _time(data["median"], "median")
        return cls(
            median,
            _time(data.get("q25", median), "q25"),
            _time(data.get("q75", median), "q75"),
            _time(data.get("min", median), "min"),
            _time(data.get("mean", median), "mean"),
            int(data.get("repeats", 1)),
        )


def _time(value: Any, name: str) -> float:
    """``value`` as milliseconds: a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} = {value!r} is not a time in ms")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} = {value!r} ms is not a finite time >= 0")
    return float(value)


def time_runners(runners: Sequence[Runner], protocol: TimingProtocol, context=None) -> list[Timing]:
    """Time ``runners`` round-robin under ``protocol`` (see the module docstring)."""
    samples: list[list[int]] = [[] for _ in runners]
    clock = time.perf_counter_ns
    with context if context is not None else contextlib.nullcontext(), _gc_off():
        counts = []
        for run in runners:
            start = clock()
            for _ in range(max(protocol.warmup, 1)):
                run()
            estimate = (clock() - start) / 1e6 / max(protocol.warmup, 1)
            counts.append(protocol.repeats_for(estimate))
        rounds, span, first = max(counts), protocol.min_span_ms * 1e6, clock()
        round_ = 0
        while round_ < rounds or clock() - first < span:
            for run, out, count in zip(runners, samples, counts, strict=True):
                if round_ >= count and round_ < rounds:
                    continue
                if protocol.rewarm:
                    run()
                start = clock()
                run()
                out.append(clock() - start)
            round_ += 1
    return [Timing.from_samples(s) for s in samples]


class ChunkSizer:
    """Chunk sizes for timing runners round-robin: ``first`` runners at first; then, after each
    chunk's timings (:meth:`update`), as many as make the round-robin last about
    ``protocol.min_span_ms`` on its own (up to ``most``, which bounds the memory of the runners
    alive at once), so that the span costs no extra calls where runners are fast."""

    def __init__(self, protocol: TimingProtocol, first: int, most: int):
        self.protocol, self.size, self.first, self.most = protocol, first, first, max(first, most)

    def chunks(self, items: Sequence) -> Iterator[list]:
        """Consecutive chunks of ``items``, each as large as the size at the time it is taken."""
        start = 0
        while start < len(items):
            chunk = list(items[start : start + self.size])
            start += len(chunk)  # the size may change while the chunk is timed
            yield chunk

    def update(self, timings: Sequence[Timing]) -> None:
        """Size the next chunk from the time a runner of this one took (its calls, untimed
        ones included)."""
        if not timings or self.protocol.min_span_ms <= 0:
            return
        calls = 1 + int(self.protocol.rewarm)
        cost = [
            (self.protocol.warmup + calls * self.protocol.repeats_for(t.median)) * t.median
            for t in timings
        ]
        each = max(float(np.mean(cost)), 1e-6)
        wanted = math.ceil(self.protocol.min_span_ms / each)
        self.size = int(min(max(wanted, self.first), self.most))


@contextlib.contextmanager
def _gc_off() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --------------------------------------------------------------------- backends


class Backend(Protocol):
    name: str
    threads: int
    batch: int
    precision: str

    def prepare(self, module, inputs) -> Runner: ...

    def prepare_cached(self, key: str, build) -> Runner: ...

    def timing_context(self) -> contextlib.AbstractContextManager: ...

    def environment(self) -> dict[str, Any]: ...


def check_settings(
    threads: int, batch: int, precision: str = "fp32", precisions: Sequence[str] = PRECISIONS
) -> None:
    """Raise :class:`InputError` for settings a backend cannot run with."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InputError(f"threads = {threads!r} must be a positive integer")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InputError(f"batch = {batch!r} must be a positive integer")
    if precision not in precisions:
        raise InputError(
            f"precision {precision!r} is not available on this backend; choices: "
            f"{', '.join(precisions)}"
        )


def pin_cpus(cpus: Sequence[int] | None) -> list[int]:
    """Restrict this process to ``cpus`` (when given); returns the CPUs it may run on."""
    if not hasattr(os, "sched_setaffinity"):
        return []
    if cpus:
        available = os.sched_getaffinity(0)
        bad = [c for c in cpus if c not in available]
        if bad:
            raise InputError(
                f"cpus {bad} are not available; this process may use {sorted(available)}"
            )
        os.sched_setaffinity(0, set(cpus))
    return sorted(os.sched_getaffinity(0))


def backend_environment(
    backend, versions: Mapping[str, Any], precision: bool = True
) -> dict[str, Any]:
    """A backend's environment record: the machine, the backend's name, the ``versions`` of the
    software it runs on, its threads and batch and (``precision``) its precision."""
    environment = {
        **machine_environment(),
        "backend": backend.name,
        **versions,
        "threads": backend.threads,
        "batch": backend.batch,
    }
    if precision:
        environment["precision"] = backend.precision
    return environment


def machine_environment() -> dict[str, Any]:
    """CPU model, core count, OS and the versions of the numeric libraries."""
    import sklearn

    env: dict[str, Any] = {
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "affinity": pin_cpus(None),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
    }
    governor = "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"
    with contextlib.suppress(OSError):
        env["cpu_governor"] = Path(governor).read_text().strip()
    return env


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


#: Conversions a worker process runs before a fresh one takes its place (:class:`ConversionWorker`):
#: lowering leaks memory (an ExecuTorch worker lowering elasticvit subnets at 160 px grew past
#: 9 GB in 50 of them).
WORKER_TASKS = 8


class ConversionWorkerError(WorkFailed):
    """A conversion worker process died (the system killed it, most often for memory)."""


class ConversionCache:
    """Converted models (bytes) and their inputs, kept for reuse across passes: in memory up to
    ``limit`` bytes, beyond it in a temporary folder (removed with the cache).

    :meth:`fill` converts many models ahead of timing in worker processes (lowering to an
    ExecuTorch program takes seconds to a minute per model, and the conversions are independent);
    :meth:`get` converts on first use in this process."""

    def __init__(self, suffix: str, limit: int = 1 << 29):
        self.suffix, self.limit = suffix, limit
        self._entries: dict[str, tuple[bytes | Path, Any]] = {}
        self._bytes = 0
        self._spill: tempfile.TemporaryDirectory | None = None
        self._pool: list[ConversionWorker] = []
        self._folder: Path | None = None

    def keep_in(self, folder: Path, salt: str, keys: Sequence[str] | None = None) -> int:
        """From now on write every conversion to files in ``folder`` (the model and its inputs,
        in a subfolder named by a digest of ``salt`` -- what else the conversions depend on) and
        take those already there, written by a command that was killed: it resumes there.
        Returns how many of ``keys`` are there already (all the conversions there, by default)."""
        digest = hashlib.sha256(salt.encode()).hexdigest()[:16]
        self._folder = Path(folder) / digest
        self._folder.mkdir(parents=True, exist_ok=True)
        if keys is None:
            return len(list(self._folder.glob(f"*{self.suffix}")))
        return sum(self._lookup(key) is not None for key in keys)

    def get(self, key: str, convert: Callable[[], tuple[bytes, Any]]) -> tuple[bytes | Path, Any]:
        """The model stored under ``key``, converted by ``convert()`` (model, inputs) if new."""
        hit = self._lookup(key)
        if hit is None:
            hit = self._store(key, *convert())
        return hit

    def _files(self, key: str) -> tuple[Path, Path]:
        """The model file and the inputs file of ``key`` in the folder it keeps them in."""
        assert self._folder is not None
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return self._folder / f"{digest}{self.suffix}", self._folder / f"{digest}.inputs.pt"

    def _lookup(self, key: str) -> tuple[bytes | Path, Any] | None:
        hit = self._entries.get(key)
        if hit is None and self._folder is not None:
            model, inputs = self._files(key)
            if model.is_file() and inputs.is_file():
                import torch

                try:
                    loaded = torch.load(inputs, weights_only=True)
                except Exception:  # a damaged file (torch raises many types): convert again
                    return None
                hit = self._entries[key] = (model, tuple(loaded))
        return hit

    def _store(self, key: str, data: bytes, inputs: Any) -> tuple[bytes | Path, Any]:
        if self._folder is not None:  # inputs first: the model file marks a complete pair
            import torch

            model, inputs_file = self._files(key)
            replace_atomic(inputs_file, lambda tmp: torch.save(list(inputs), tmp))
            replace_atomic(model, lambda tmp: tmp.write_bytes(data))
            hit = self._entries[key] = (model, inputs)
            return hit
        stored: bytes | Path = data
        if self._bytes + len(data) > self.limit:
            if self._spill is None:
                self._spill = tempfile.TemporaryDirectory(prefix="nas-models-")
            stored = Path(self._spill.name) / f"{len(self._entries)}{self.suffix}"
            stored.write_bytes(data)
        else:
            self._bytes += len(data)
        hit = self._entries[key] = (stored, inputs)
        return hit

    def fill(
        self,
        items: Sequence[tuple[str, Callable[[], tuple[bytes, Any]]]],
        jobs: int,
        progress: bool = False,
    ) -> None:
        """Convert the (key, convert) items not stored yet, ``jobs`` at a time in worker
        processes (one torch thread each); each ``convert`` must pickle (a module-level function
        or a ``functools.partial`` of one). With one job, or one item, nothing happens here:
        :meth:`get` converts on first use. The workers stay up for later calls."""
        todo = deque((key, convert) for key, convert in items if self._lookup(key) is None)
        if jobs < 2 or len(todo) < 2:
            return
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        from tqdm import tqdm

        workers = self._workers(jobs)
        running: dict[Any, tuple[str, ConversionWorker]] = {}

        def start(worker: ConversionWorker) -> None:
            key, convert = todo.popleft()
            running[worker.submit(convert)] = (key, worker)

        total = len(todo)
        with tqdm(total=total, desc="converting", disable=not progress, leave=False) as bar:
            try:
                for worker in workers[:total]:
                    start(worker)
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        key, worker = running.pop(future)
                        self._store(key, *future.result())
                        bar.update(1)
                        if todo:
                            start(worker)
            except BrokenProcessPool:
                self.close_workers()
                raise ConversionWorkerError(
                    f"a conversion worker process died (killed for memory?) with "
                    f"{total - bar.n} of {total} conversions left; rerun with fewer --jobs"
                ) from None

    def _workers(self, jobs: int) -> list[ConversionWorker]:
        if len(self._pool) != jobs:
            self.close_workers()
            self._pool = [ConversionWorker() for _ in range(jobs)]
            weakref.finalize(self, ConversionCache._close, self._pool)
        return self._pool

    def close_workers(self) -> None:
        """End the worker processes (a later :meth:`fill` starts fresh ones)."""
        self._close(self._pool)
        self._pool = []

    @staticmethod
    def _close(workers: list[ConversionWorker]) -> None:
        for worker in workers:
            worker.close()


class ConversionWorker:
    """One conversion worker process, given one conversion at a time and replaced by a fresh
    process after :data:`WORKER_TASKS` of them. (Not ``ProcessPoolExecutor``'s
    ``max_tasks_per_child``: with more work queued than workers, Python 3.11-3.13 break the pool
    when a worker reaches its limit, cpython#115634.)"""

    def __init__(self):
        self._executor = None
        self._tasks = 0

    def submit(self, convert: Callable[[], tuple[bytes, Any]]):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if self._tasks >= WORKER_TASKS:
            self.close()
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(os.getpid(),),
            )
            self._tasks = 0
        self._tasks += 1
        return self._executor.submit(convert)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None


def time_modules(
    backend,
    modules: Sequence[tuple[str, Any]],
    protocol: TimingProtocol,
    jobs: int = 1,
    progress: bool = False,
) -> list[Timing]:
    """Time (cache key, module builder) pairs round-robin on ``backend`` under ``protocol``
    (converted first by ``jobs`` worker processes where the backend converts slowly).

    The runners live for this call only, so that a chunk's sessions are created after the
    previous chunk's are released: every chunk is timed in the same state. Sub-millisecond
    subnets whose ONNX Runtime sessions were created while the previous chunk's still lived ran
    several percent slower, which put the validation's timings off the measuring job's."""
    convert_ahead(backend, modules, jobs, progress)
    runners = [backend.prepare_cached(key, build) for key, build in modules]
    return time_runners(runners, protocol, backend.timing_context())


def convert_ahead(backend, modules: Sequence[tuple[str, Any]], jobs: int, progress: bool) -> None:
    """Have ``backend`` convert the (key, build) ``modules`` in ``jobs`` worker processes before
    they are timed, where its conversions are slow enough to have it (executorch, tflite)."""
    ahead = getattr(backend, "convert_ahead", None)
    if ahead is not None and jobs > 1:
        ahead(modules, jobs, progress)


def _init_worker(parent: int) -> None:
    """Conversion workers run side by side, one torch thread each, and end with the process that
    started them: killed (SIGTERM, SIGKILL), it cannot shut its pool down, and its workers would
    wait for work forever, holding their memory."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()
    import torch

    torch.set_num_threads(1)


class TorchBackend:
    """Eager PyTorch on the CPU, in ``torch.inference_mode``."""

    name = "torch"

    def __init__(self, threads: int = 1, batch: int = 1, precision: str = "fp32"):
        check_settings(threads, batch, precision, ("fp32",))
        self.threads, self.batch, self.precision = threads, batch, precision

    def prepare(self, module, inputs) -> Runner:
        module = module.eval()
        inputs = tuple(inputs)

        def run() -> object:
            return module(*inputs)

        return run

    def prepare_cached(self, key: str, build) -> Runner:
        return self.prepare(*build())

    @contextlib.contextmanager
    def timing_context(self):
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                yield
        finally:
            torch.set_num_threads(previous)

    def environment(self) -> dict[str, Any]:
        import torch

        return backend_environment(self, {"torch": torch.__version__}, precision=False)


class OnnxRuntimeBackend:
    """ONNX Runtime's CPU execution provider: all graph optimisations, sequential execution."""

    name = "onnxruntime"

    def __init__(self, threads: int = 1, batch: int = 1, precision: str = "fp32"):
        check_settings(threads, batch, precision)
        self.threads, self.batch, self.precision = threads, batch, precision
        self._cache = ConversionCache(".onnx")

    def session(self, model: bytes | str | os.PathLike):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        source = model if isinstance(model, bytes) else str(model)
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])

    def prepare_onnx(self, model: bytes | str | os.PathLike, feeds: Mapping[str, Any]) -> Runner:
        """A runner for an ONNX model and its inputs (name -> numpy array)."""
        session = self.session(model)
        feeds = dict(feeds)

        def run() -> object:
            return session.run(None, feeds)

        return run

    def prepare(self, module, inputs) -> Runner:
        return self.prepare_onnx(*self._export(module, inputs))

    def prepare_cached(self, key: str, build) -> Runner:
        return self.prepare_onnx(*self._cache.get(key, lambda: self._export(*build())))

    def _export(self, module, inputs) -> tuple[bytes, dict]:
        from predictors.modules import onnx_bytes

        feeds = {f"input{i}": t.detach().numpy() for i, t in enumerate(inputs)}
        data = onnx_bytes(module, tuple(inputs))
        if self.precision == "int8":
            from predictors.qdq import quantize_kernel

            data = quantize_kernel(data, feeds)
        return data, feeds

    def timing_context(self):
        return contextlib.nullcontext()

    def environment(self) -> dict[str, Any]:
        import onnxruntime as ort
        import torch

        return backend_environment(
            self, {"onnxruntime": ort.__version__, "torch": torch.__version__}
        )


class ConvertingBackend:
    """The frame of a backend whose conversions take seconds (``executorch``, ``tflite``):
    converted models are cached per key across passes, and ``convert_ahead`` converts many in
    worker processes before they are timed. A subclass sets ``name``, ``suffix`` (of spilled
    files), ``convert`` (a module-level ``(precision, build) -> (bytes, inputs)``, so that worker
    processes can run it), ``runner(data, inputs)`` (``data``: bytes or a spilled file) and
    ``versions()`` (the software it runs on, for the profile's environment)."""

    name: str
    suffix: str

    def __init__(self, threads: int = 1, batch: int = 1, precision: str = "fp32"):
        check_settings(threads, batch, precision)
        self.threads, self.batch, self.precision = threads, batch, precision
        self._cache = ConversionCache(self.suffix)

    @staticmethod
    def convert(precision: str, build: Callable[[], tuple[Any, tuple]]) -> tuple[bytes, tuple]:
        raise NotImplementedError  # pragma: no cover - abstract

    def runner(self, data: bytes | Path, inputs: tuple) -> Runner:
        raise NotImplementedError  # pragma: no cover - abstract

    def versions(self) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover - abstract

    def _converter(self, build) -> Callable[[], tuple[bytes, tuple]]:
        from functools import partial

        return partial(type(self).convert, self.precision, build)

    def prepare(self, module, inputs) -> Runner:
        inputs = tuple(inputs)
        return self.runner(*self._converter(lambda: (module, inputs))())

    def prepare_cached(self, key: str, build) -> Runner:
        return self.runner(*self._cache.get(key, self._converter(build)))

    def keep_conversions(self, folder: Path, keys: Sequence[str] | None = None) -> int:
        """Write conversions to files in ``folder`` and reuse those there, made by this backend
        at these settings, library versions and unit revisions (:mod:`predictors.forms`): a
        killed command resumes its conversions. Returns how many of ``keys`` (default: of any)
        are there already."""
        import json

        from predictors.forms import current

        settings = [self.name, self.precision, self.batch, self.versions(), current()]
        return self._cache.keep_in(Path(folder), json.dumps(settings, sort_keys=True), keys)

    def convert_ahead(self, modules: Sequence[tuple[str, Any]], jobs: int, progress: bool) -> None:
        """Convert the (key, build) ``modules`` not cached yet in ``jobs`` worker processes (each
        ``build`` must pickle); :meth:`prepare_cached` then finds them ready."""
        self._cache.fill([(key, self._converter(build)) for key, build in modules], jobs, progress)

    def timing_context(self):
        return contextlib.nullcontext()

    def environment(self) -> dict[str, Any]:
        return backend_environment(self, self.versions())


#: Random draws (besides a kernel's own inputs) that calibrate its int8 ranges.
CALIBRATION_DRAWS = 4


def pt2e_quantize(
    module,
    inputs: tuple,
    quantizer,
    calibration: Sequence[tuple] = (),
    fold_quantize: bool = True,
):
    """``module`` captured by ``torch.export`` for fixed-shape ``inputs`` and quantized by the
    PT2E ``quantizer`` (annotations set: a runtime's int8 scheme), calibrated on ``calibration``
    (tuples like ``inputs``), else on ``inputs`` and :data:`CALIBRATION_DRAWS` standard-normal
    draws like them."""
    import torch

    from nas.runtimes import quiet

    with quiet():
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        graph = torch.export.export(module, tuple(inputs)).module()
        prepared = prepare_pt2e(graph, quantizer)
        if not calibration:
            generator = torch.Generator().manual_seed(0)
            draws = [
                tuple(torch.randn(t.shape, generator=generator) for t in inputs)
                for _ in range(CALIBRATION_DRAWS)
            ]
            calibration = [tuple(inputs), *draws]
        with torch.no_grad():
            for batch in calibration:
                prepared(*batch)
        return convert_pt2e(prepared, fold_quantize=fold_quantize)


def lazy(module: str, attribute: str) -> Callable[..., Backend]:
    """A factory that imports ``module`` only when the backend is first made."""

    def factory(**settings) -> Backend:
        import importlib

        return getattr(importlib.import_module(module), attribute)(**settings)

    return factory


_BACKENDS: dict[str, Callable[..., Backend]] = {
    "torch": TorchBackend,
    "onnxruntime": OnnxRuntimeBackend,
}


def register_backend(name: str, factory: Callable[..., Backend]) -> None:
    """Make ``factory(threads=, batch=, precision=)`` available as ``--backend name``."""
    _BACKENDS[name] = factory


register_backend("executorch", lazy("predictors.executorch_backend", "ExecuTorchBackend"))
register_backend("tflite", lazy("predictors.tflite_backend", "TfliteBackend"))


def backend_names() -> list[str]:
    return list(_BACKENDS)


def get_backend(name: str, threads: int = 1, batch: int = 1, precision: str = "fp32") -> Backend:
    """The backend registered as ``name``, configured with ``threads``, ``batch`` and
    ``precision``."""
    if name not in _BACKENDS:
        raise UnknownBackendError(
            f"unknown backend {name!r}; choices: {', '.join(_BACKENDS)} "
            "(phones: use `nas device export-suite` and `nas device import`)"
        )
    return _BACKENDS[name](threads=threads, batch=batch, precision=precision)
