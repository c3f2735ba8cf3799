"""itexlab: INT8 quantization of TensorFlow models on CPU, partitioned and run with oneDNN Graph.

The public names load on first use, so `import itexlab` (and the CLI) can set thread counts
before TensorFlow and oneDNN start their thread pools. The stages, each a package that imports
only the ones before it: ir (the graph and the plan) -> backend (oneDNN, the CPU) -> frontend
(TensorFlow intake) -> quant (INC) -> lower (QDQ graph to plan) -> runtime (the executor) ->
measure (systems, timing, benchmark) -> report (tables, drawings, widgets, plots).
"""

import importlib
import os

# TF 2.21 turns its oneDNN kernels on by default only on CPUs with VNNI, BF16 or AMX, and reads this
# variable once, when TensorFlow is imported. Elsewhere INC's legacy INT8 ops (QuantizedConv2DWith...)
# find only placeholder kernels that produce nothing ("Missing 0-th output") and TF FP32 runs on
# Eigen. itexlab asks for them on every CPU, so every system compares the same TF; it can do so only
# when `import itexlab` comes before TensorFlow (itexlab.frontend.tfgraph says when it came after).
# A user's own setting wins (an empty one is no setting, to TF as to itexlab).
if not os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip():
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"

_PUBLIC = {
    "CompiledModel": "runtime.executor", "PartitionConfig": "config", "Plan": "ir.plan", "QuantConfig": "config",
    "QuantizedModel": "quant.quantization", "make_plan": "lower.partition", "quantize": "quant.quantization",
    "save": "runtime.saving", "load": "runtime.saving", "compare_layers": "measure.layers",
    "FallbackSession": "measure.tuning", "autotune": "measure.tuning",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'itexlab' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
