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

INT8_FEATURES = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8",
                 "amx_bf16")


def _fields(key: str, cpuinfo: str | None) -> list[str]:
    """The values of `key` in /proc/cpuinfo (or in the text given), one per processor."""
    if cpuinfo is None:
        path = pathlib.Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.exists() else ""
    lines = (line.partition(":") for line in cpuinfo.splitlines())
    return [value.strip() for name, colon, value in lines if colon and name.strip() == key]


def isa_features(cpuinfo: str | None = None) -> list[str]:
    """The INT8-relevant instruction set extensions the CPU reports (what oneDNN may use of them
    is `itexlab.backend.onednn.effective_isa()`)."""
    flags = {f for line in _fields("flags", cpuinfo) for f in line.split()}
    return [f for f in INT8_FEATURES if f in flags]


def model_name(cpuinfo: str | None = None) -> str:
    """The CPU's model name, with its family and model numbers (INT8 speed depends on the
    microarchitecture, not just the ISA: AMD's Zen 4 runs AVX-512 on 256-bit units, Zen 5 on 512-bit
    ones; a hypervisor may report both as just "AMD EPYC")."""
    names, families, models = (_fields(key, cpuinfo) for key in ("model name", "cpu family", "model"))
    if not names:
        return "unknown CPU"
    return f"{names[0]} (family {families[0]}, model {models[0]})" if families and models else names[0]


OPENMP_SPIN_COUNT = "30000"


def configure_openmp() -> None:
    """Set the OpenMP spin count. Call before libgomp loads (itexlab.backend.onednn does)."""
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = OPENMP_SPIN_COUNT


def pin_threads(threads: int) -> None:
    """Use `threads` threads in TF and oneDNN. Call before TensorFlow or itexlab.backend.onednn load."""
    if threads < 1:
        raise ValueError(f"threads must be positive, not {threads}")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"


def thread_count() -> int:
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)


def describe() -> dict:
    """The CPU as reports name it: model, INT8-relevant features, the instruction set oneDNN runs
    its kernels for (`ONEDNN_MAX_CPU_ISA` may cap it below the CPU's), threads."""
    from . import onednn

    return {"model": model_name(), "features": isa_features(), "onednn_isa": onednn.effective_isa(),
            "threads": thread_count()}


def headline(description: dict) -> str:
    features = ", ".join(description["features"]) or "none of " + ", ".join(INT8_FEATURES)
    return (f"{description['model']} · oneDNN ISA {description['onednn_isa']} · CPU features: {features} · "
            f"{description['threads']} threads")
