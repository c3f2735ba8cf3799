"""The numerics tests (the random networks of test_differential.py too) again, in a fresh process per
oneDNN instruction set this CPU can emulate:
ONEDNN_MAX_CPU_ISA makes oneDNN dispatch the kernels of a lesser CPU (AVX2 laptops, AVX-512
Xeons without VNNI), where int8 products are summed in pairs in a saturating int16."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def effective_isa(cap: str) -> str:
    code = "import itexlab.backend.onednn as o; print(o.effective_isa())"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "ONEDNN_MAX_CPU_ISA": cap},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()[-1]


@pytest.mark.parametrize("isa", ["AVX2", "AVX512_CORE", "AVX512_CORE_VNNI", "AVX512_CORE_AMX"])
def test_numerics_under_isa(isa):
    reached = effective_isa(isa)
    if reached != isa:
        pytest.skip(f"cannot emulate {isa}: oneDNN's kernels on this CPU go up to {reached} only")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "numerics", "-p", "no:cacheprovider",
                           "tests/test_numerics.py", "tests/test_partition_execute.py", "tests/test_differential.py",
                           "tests/test_transformers.py"],
                          cwd=ROOT, env={**os.environ, "ONEDNN_MAX_CPU_ISA": isa}, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, f"numerics under ONEDNN_MAX_CPU_ISA={isa}:\n{done.stdout[-4000:]}"
    assert " passed" in done.stdout and "skipped" not in done.stdout
