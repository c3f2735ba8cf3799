"""What the CPU offers INT8 (VNNI, AMX), and how oneDNN's threads share the cores with TF's.

TensorFlow (Eigen thread pool) and oneDNN (GNU OpenMP) each size their pools at start-up; two
pools of "all cores" fighting over 2 cores is the classic slowdown, so the count is set once, in
the environment, before either library loads.

GNU OpenMP's default wait policy keeps an idle thread spinning for 300,000 pause loops (about
15 ms here) after every parallel region. Inside a run that keeps the team hot between partitions;
after the run it holds the cores against whatever runs next: TF right after an itexlab run took
85 ms instead of 67. 30,000 loops (about 1.5 ms) keep the team just as hot between partitions
(itexlab 15.2 ms either way) and leave TF its 67 ms. A user's own GOMP_SPINCOUNT or
OMP_WAIT_POLICY wins.
"""

from __future__ import annotations

import os
import pathlib

INT8_FEATURES = ("avx512_vnni", "avx_vnni", "amx_int8", "amx_tile", "avx512_bf16", "amx_bf16", "avx512f")


def _cpuinfo() -> str:
    path = pathlib.Path("/proc/cpuinfo")
    return path.read_text() if path.exists() else ""


def _fields(cpuinfo: str, key: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
            if line.split(":", 1)[0].strip() == key and ":" in line]


def isa_features(cpuinfo: str | None = None) -> list[str]:
    """The INT8-relevant instruction set extensions the CPU reports."""
    flags = {f for line in _fields(_cpuinfo() if cpuinfo is None else cpuinfo, "flags") for f in line.split()}
    return [f for f in INT8_FEATURES if f in flags]


def model_name(cpuinfo: str | None = None) -> str:
    """The CPU's model name (INT8 speed depends on the microarchitecture, not just the ISA: AMD's
    Zen 4 runs AVX-512 on 256-bit units)."""
    names = _fields(_cpuinfo() if cpuinfo is None else cpuinfo, "model name")
    return names[0] if names else "unknown CPU"


OPENMP_SPIN_COUNT = "30000"


def configure_openmp() -> None:
    """Set the OpenMP spin count. Call before libgomp loads (itexlab.onednn does)."""
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = OPENMP_SPIN_COUNT


def pin_threads(threads: int) -> None:
    """Use `threads` threads in TF and oneDNN. Call before TensorFlow or itexlab.onednn load."""
    if threads < 1:
        raise ValueError(f"threads must be positive, not {threads}")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"


def thread_count() -> int:
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
