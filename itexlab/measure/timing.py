"""Timing: side-by-side measurement of the systems (measure.systems) on the same inputs, and the
report it makes.

Systems run round-robin on the same inputs in one process, so machine noise hits all of them
alike; we report medians and the spread (inter-quartile range) over repeats.

Each turn calls a system twice, back to back. The first call finds the machine as the previous
system left it: TF FP32 streams ~95 MB of weights through a 32 MB L3, evicting INT8 models' ~23 MB,
and OpenMP's idle threads have gone to sleep. The second finds it as a loop serving one model
does. The latency we report is the second call's; the first's is kept as `switch_ms`, so the cost
of sharing the machine is visible rather than mixed into the steady state.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

import numpy as np

from ..errors import first_line
from ..ir import structure
from ..ir.speed import NOISE, SpeedCheck
from .systems import BASELINE, SUBJECT, Subject, System


@dataclasses.dataclass
class Result:
    system: str
    model: str
    batch: int
    latency_ms: float          # median over repeats
    spread_ms: float           # inter-quartile range
    ips: float                 # images per second at the median latency
    speedup: float | None = None  # over tf-fp32 at the same batch (None without tf-fp32)
    switch_ms: float = 0.0     # median of the first call after another system ran (see above)


@dataclasses.dataclass
class Unavailable:
    """A comparison system that could not run on this CPU, and why."""

    system: str
    model: str
    reason: str


@dataclasses.dataclass
class Quality:
    system: str
    model: str
    metric: str                # "accuracy" (labels) or "top1-agreement" (with tf-fp32)
    value: float


@dataclasses.dataclass
class Report:
    results: list[Result]
    quality: list[Quality]
    partitions: dict[str, dict]   # model -> counts from its plan
    sizes: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)  # model -> system -> bytes
    unavailable: list[Unavailable] = dataclasses.field(default_factory=list)
    cpu: dict = dataclasses.field(default_factory=dict)  # cpu.describe(): model name, features, oneDNN ISA
    slower: dict[str, list[SpeedCheck]] = dataclasses.field(default_factory=dict)  # model -> where INT8 lost

    def to_dict(self) -> dict:
        return {"cpu": self.cpu, "results": [dataclasses.asdict(r) for r in self.results],
                "quality": [dataclasses.asdict(q) for q in self.quality],
                "unavailable": [dataclasses.asdict(u) for u in self.unavailable],
                "partitions": self.partitions, "sizes": self.sizes,
                "slower_than_fp32": {m: [dataclasses.asdict(c) for c in checks] for m, checks in self.slower.items()}}

    def extend(self, other: "Report") -> None:
        self.results += other.results
        self.quality += other.quality
        self.unavailable += other.unavailable
        self.partitions.update(other.partitions)
        self.sizes.update(other.sizes)
        self.slower.update(other.slower)
        self.cpu = self.cpu or other.cpu

    def slower_lines(self, model: str) -> list[str]:
        """Where itexlab's INT8 lost to TF FP32, and what its time went to."""
        return [line for check in self.slower.get(model, []) for line in
                [f"{SUBJECT} is slower than {BASELINE} at batch {check.batch}:"] + [f"  {x}" for x in check.causes()]]

    def frame(self):
        """One row per (model, system, batch): latency, spread, throughput, speedup, quality, size;
        and one row per system that could not run here, with the reason."""
        import pandas as pd

        quality = {(q.model, q.system): (q.metric, q.value) for q in self.quality}
        rows = []
        for r in self.results:
            metric, value = quality.get((r.model, r.system), (None, None))
            size = self.sizes.get(r.model, {}).get(r.system)
            rows.append({**dataclasses.asdict(r), "quality_metric": metric, "quality": value,
                         "size_mb": None if size is None else size / 2**20, "unavailable": None})
        rows += [{"system": u.system, "model": u.model, "unavailable": u.reason} for u in self.unavailable]
        return pd.DataFrame(rows, columns=["system", "model", "batch", "latency_ms", "spread_ms", "ips", "speedup",
                                           "switch_ms", "quality_metric", "quality", "size_mb", "unavailable"])

    def table(self, model: str) -> str:
        quality = {q.system: q for q in self.quality if q.model == model}
        rows = [("system", "batch", "latency ms", "± IQR", "img/s", "vs FP32", "quality")]
        for r in (r for r in self.results if r.model == model):
            q = quality.get(r.system)
            rows.append((r.system, str(r.batch), f"{r.latency_ms:.2f}", f"{r.spread_ms:.2f}", f"{r.ips:.1f}",
                         "—" if r.speedup is None else f"{r.speedup:.2f}x",
                         f"{q.metric} {100 * q.value:.2f}%" if q else ""))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines += [f"{u.system}: unavailable on this CPU — {u.reason}" for u in self.unavailable if u.model == model]
        lines += self.slower_lines(model)
        counts = self.partitions.get(model)
        if counts:
            lines.append(f"partitions: {counts['partitions']} ({counts['int8_partitions']} INT8), "
                         f"{counts['fused_ops']} TF ops fused, {counts['tf_ops']} left to TF, "
                         f"{100 * counts['int8_mac_share']:.1f}% of MACs in INT8 partitions")
        return "\n".join(lines)


ProgressCallback = Callable[[str, int, int], None]  # (what, done, total)


_progress_bars: dict[str, object] = {}


def print_progress(what: str, done: int, total: int) -> None:
    """A progress bar per task that fills in place: tqdm's, in a terminal and in a notebook alike."""
    from tqdm.auto import tqdm

    bar = _progress_bars.get(what)
    if bar is None:
        bar = _progress_bars[what] = tqdm(total=total, desc=what, leave=True)
    bar.update(done - bar.n)
    if done == total:
        bar.close()
        del _progress_bars[what]


def usable_systems(systems: Sequence[System], subject: Subject, model: str, batch: np.ndarray
                   ) -> tuple[dict[str, Callable], list[Unavailable]]:
    """Build each system and run it once on `batch`. A comparison system that cannot be built or run
    here is set aside with the reason, so it never ends a run; itexlab-int8's own failures raise."""
    runners, unavailable = {}, []
    for system in systems:
        try:
            runner = system.build(subject)
            runner(batch)
        except Exception as e:  # noqa: BLE001  (whatever stops a peer is its reason, reported)
            if system.name == SUBJECT:
                raise
            unavailable.append(Unavailable(system.name, model, f"{type(e).__name__}: {first_line(e)}"))
            continue
        runners[system.name] = runner
    return runners, unavailable


def measure(systems: dict[str, Callable[[np.ndarray], object]], model: str, batch: np.ndarray,
            repeats: int = 20, warmup: int = 3, progress: ProgressCallback | None = print_progress) -> list[Result]:
    """Median latency of each system on the same batch, interleaved round-robin (two calls per turn)."""
    steady: dict[str, list[float]] = {name: [] for name in systems}
    switch: dict[str, list[float]] = {name: [] for name in systems}
    for fn in systems.values():
        for _ in range(warmup):
            fn(batch)
    for i in range(repeats):
        for name, fn in systems.items():
            for times in (switch[name], steady[name]):
                start = time.perf_counter()
                fn(batch)
                times.append(time.perf_counter() - start)
        if progress:
            progress(f"{model} batch {batch_size(batch)}", i + 1, repeats)
    results = []
    for name, ts in steady.items():
        q1, median, q3 = np.percentile(ts, [25, 50, 75])
        results.append(Result(name, model, batch_size(batch), 1000 * median, 1000 * (q3 - q1), batch_size(batch) / median,
                              switch_ms=1000 * float(np.median(switch[name]))))
    base = next((r for r in results if r.system == BASELINE), None)
    if base:
        for r in results:
            r.speedup = base.latency_ms / r.latency_ms
    return results


def slower_than_fp32(int8, results: list[Result], batch, repeats: int) -> list[SpeedCheck]:
    """For one batch's results: if itexlab's INT8 (the CompiledModel `int8`) lost to TF FP32, the
    verdict naming the steps its time went to (profiled on `batch`), else nothing."""
    from ..runtime import speed

    subject = next((r for r in results if r.system == SUBJECT), None)
    base = next((r for r in results if r.system == BASELINE), None)
    if subject is None or base is None or subject.speedup is None or subject.speedup >= 1 - NOISE:
        return []
    return [speed.explain(int8, list(batch), subject.latency_ms, base.latency_ms, repeats)]


def batch_size(inputs) -> int:
    """The batch size of a model's inputs: an array, or arrays nested as the model takes them."""
    return len(structure.first_value(inputs))


def batch_of(sample, size: int):
    """`size` inputs drawn from the sample (repeating it when it is smaller); a multi-input model's
    sample is its inputs nested as it takes them, each cut alike."""
    reps = -(-size // batch_size(sample))
    return structure.map_values(sample, lambda a: np.ascontiguousarray(np.concatenate([a] * reps)[:size]))


def predictions(fn: Callable, x, batch: int = 64) -> np.ndarray:
    """The first output of `fn` on all of x, `batch` samples at a time."""
    return np.concatenate([np.asarray(fn(structure.map_values(x, lambda a: a[i:i + batch]))[0])
                           for i in range(0, batch_size(x), batch)])


def quality(systems: dict[str, Callable], model: str, x: np.ndarray, labels: np.ndarray | None) -> list[Quality]:
    """Accuracy against labels, or top-1 agreement with tf-fp32 when there are none (and nothing
    without tf-fp32)."""
    top1 = {name: predictions(fn, x).argmax(-1) for name, fn in systems.items()}
    if labels is not None:
        return [Quality(name, model, "accuracy", float((p == labels).mean())) for name, p in top1.items()]
    if BASELINE not in top1:
        return []
    return [Quality(name, model, "top1-agreement", float((p == top1[BASELINE]).mean()))
            for name, p in top1.items()]


