"""Whether INT8 runs faster than FP32 here, as a CompiledModel's first run measured it (see
itexlab.runtime.speed): plain data, and the words every view uses for it. A plan that interleaves
many partitions with TF segments can cost more than INT8 saves; this is where that is said."""

from __future__ import annotations

import dataclasses
from collections import Counter

# Ratios this close to 1 are within the noise of a few runs on a shared machine: "about as fast".
NOISE = 0.05
NAMED_STEPS = 3  # the slowest steps outside INT8 partitions a verdict names


@dataclasses.dataclass
class StepTime:
    """One step of the INT8 run and its median time."""

    kind: str       # "int8" / "fp32" (oneDNN partitions), "tf" (a TF segment), "executor" (views, reorders)
    label: str      # the partition's name, or the TF segment's ops
    ms: float
    why: str = ""   # for TF segments: why their ops are not in a partition (the plan's most common reason)
    ops: list[str] = dataclasses.field(default_factory=list)  # for TF segments: the op type of each node


@dataclasses.dataclass
class SpeedCheck:
    """INT8 (this plan in the executor) against FP32 (the same graph without its quantizers, on
    stock TF), side by side on the same inputs in one process; medians of `runs` each."""

    batch: int
    int8_ms: float
    fp32_ms: float
    runs: int
    where: str                      # the CPU and oneDNN's ISA
    steps: list[StepTime]           # every step of the INT8 run, slowest first
    outside_ms: float = 0.0         # the INT8 run's time outside its steps: Python, checks, copies

    @property
    def speedup(self) -> float:
        return self.fp32_ms / self.int8_ms if self.int8_ms > 0 else float("inf")

    @property
    def slower(self) -> bool:
        return self.speedup < 1 - NOISE

    def total(self, kind: str) -> float:
        return sum(s.ms for s in self.steps if s.kind == kind)

    def count(self, kind: str) -> int:
        return sum(s.kind == kind for s in self.steps)

    def headline(self) -> str:
        ratio = self.speedup
        verdict = (f"{ratio:.2f}x faster" if ratio > 1 + NOISE else f"{1 / ratio:.2f}x SLOWER" if self.slower
                   else "about as fast")
        return (f"INT8 {self.int8_ms:.2f} ms vs FP32 on TF {self.fp32_ms:.2f} ms at batch {self.batch}: {verdict} "
                f"(median of {self.runs}, {self.where})")

    def causes(self) -> list[str]:
        """What makes INT8 slow, worst first: empty unless it is slower than FP32."""
        if not self.slower:
            return []
        lines = []
        int8 = self.total("int8")
        if int8 >= self.fp32_ms:
            lines.append(f"its {self.count('int8')} INT8 partitions alone take {int8:.2f} ms, more than all of FP32: "
                         "at this size quantizing, reordering and calling each partition cost more than INT8 saves")
        elsewhere = [s for s in self.steps if s.kind != "int8"]
        if elsewhere:
            spent = sum(s.ms for s in elsewhere)
            lines.append(f"{spent:.2f} ms ({100 * spent / self.int8_ms:.0f}%) go to {self.count('tf')} TF segment(s) "
                         f"between partitions, {self.count('fp32')} FP32 partition(s) and "
                         f"{self.count('executor')} executor step(s); the slowest:")
            lines += [f"  {s.ms:.2f} ms {s.label}" + (f" — {s.why}" if s.why else "")
                      for s in elsewhere[:NAMED_STEPS]]
        on_tf = Counter(op for s in self.steps for op in s.ops)
        if on_tf:
            lines.append("ops on TF between partitions: " + ", ".join(f"{op} x{n}" for op, n in on_tf.most_common())
                         + "; until they run in oneDNN, the FP32 model is the faster one here")
        if self.outside_ms > 0.2 * self.int8_ms or not lines:
            lines.append(f"{self.outside_ms:.2f} ms per run outside every step (input checks, Python)")
        return lines

    def summary_lines(self) -> list[str]:
        return [self.headline()] + self.causes()
