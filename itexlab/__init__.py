"""itexlab: INT8 quantization of TensorFlow models on CPU, partitioned and run with oneDNN Graph.

The public names load on first use, so `import itexlab` (and the CLI) can set thread counts
before TensorFlow and oneDNN start their thread pools.
"""

import importlib

_PUBLIC = {
    "CompiledModel": "execute", "PartitionConfig": "config", "Plan": "partition", "QuantConfig": "config",
    "QuantizedModel": "quantization", "make_plan": "partition", "quantize": "quantization",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'itexlab' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
