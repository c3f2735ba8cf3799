"""Where INT8 error comes from: every quantized tensor of the partitioned model set beside the same
tensor of the FP32 model it emulates, on a few samples.

The INT8 side is itexlab's own run of the plan, with every activation quantizer's int8 output made
a graph output (which splits fused partitions there, the same int8 values); the FP32 side is the
QDQ graph with every Dequantize(QuantizeV2(x)) read as x, on stock TF. So a row measures all the
error up to that tensor: its own rounding and clipping, and what it inherits.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from ..config import PartitionConfig
from ..frontend import tfgraph
from ..ir import structure
from ..ir.graph import Graph, normalize
from ..ir.plan import Plan
from ..lower.partition import make_plan
from ..lower.qdq import without_quantization
from ..lower.qparams import quant_params, quantize_constant
from ..quant.quantization import QuantizedModel
from ..runtime.executor import CompiledModel

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ["quantizer", "tensor", "producer", "partition", "dtype", "scale", "own_sqnr_db", "sqnr_db",
           "max_abs_diff", "max_diff_steps", "cosine"]


def activation_quantizers(graph: Graph) -> list[str]:
    """QuantizeV2 nodes with constant ranges that quantize a computed tensor (not weights)."""
    return [n.name for n in graph.nodes if n.op == "QuantizeV2" and not graph.is_constant(n.inputs[0])
            and all(graph.is_constant(r) for r in n.inputs[1:3])]


def compare_layers(model: QuantizedModel | Plan | CompiledModel, images: np.ndarray, samples: int = 4,
                   config: PartitionConfig | None = None) -> "pd.DataFrame":
    """One row per quantized tensor: SQNR in dB (signal power over error power), max |diff| (also
    in quantization steps) and cosine similarity between the FP32 model's tensor and the INT8 run's,
    on the first `samples` images; this error includes what the tensor inherits from the layers
    before it. `own_sqnr_db` is what its quantizer alone costs: the FP32 tensor rounded and clipped
    by it. Rows come worst `own_sqnr_db` first: the tensors where error enters, the candidates to
    keep in FP32. `partition` is the id, in `model`'s plan, of the partition that quantizes it."""
    import pandas as pd

    qdq, plan = _qdq_and_plan(model, config)
    x = structure.map_values(images, lambda array: np.asarray(array)[:samples])  # the model's inputs, in any form
    quantizers = activation_quantizers(qdq)
    if not quantizers:
        raise ValueError("the model has no quantized activations to compare")
    watched = dataclasses.replace(qdq, outputs=list(qdq.outputs) + quantizers)
    int8 = CompiledModel(make_plan(watched, plan.config), check_speed=False)(x)[len(qdq.outputs):]
    fp32_graph = without_quantization(qdq)
    tensors = [normalize(qdq.node(q).inputs[0]) for q in quantizers]
    fp32 = tfgraph.GraphFunction(fp32_graph, fp32_graph.inputs, tensors)(x)
    partition_of = {n.name: p.id for p in plan.partitions for n in p.nodes}
    rows = []
    for name, tensor, codes, reference in zip(quantizers, tensors, int8, fp32):
        node = qdq.node(name)
        lo, hi = (np.asarray(qdq.constant(r), np.float64) for r in node.inputs[1:3])
        scales, zps = quant_params(node, lo, hi)
        values = (codes.astype(np.float64) - zps[0]) * scales[0]
        reference = reference.astype(np.float64)
        error = values - reference
        signal, noise = float(np.sum(reference ** 2)), float(np.sum(error ** 2))
        alone = (quantize_constant(node, reference, scales, zps).astype(np.float64) - zps[0]) * scales[0]
        norms = float(np.linalg.norm(values) * np.linalg.norm(reference))
        rows.append({"quantizer": name, "tensor": tensor, "producer": qdq.producer(tensor).op,
                     "partition": partition_of.get(name), "dtype": node.attrs["T"], "scale": scales[0],
                     "own_sqnr_db": _decibels(signal, float(np.sum((alone - reference) ** 2))),
                     "sqnr_db": _decibels(signal, noise), "max_abs_diff": float(np.abs(error).max()),
                     "max_diff_steps": float(np.abs(error).max() / scales[0]),
                     "cosine": float(np.sum(values * reference) / norms) if norms > 0 else float(signal == noise)})
    return pd.DataFrame(rows, columns=COLUMNS).sort_values("own_sqnr_db", kind="stable").reset_index(drop=True)


def _decibels(signal: float, noise: float) -> float:
    if noise == 0:
        return float("inf")
    return 10 * float(np.log10(signal / noise)) if signal > 0 else float("-inf")


def _qdq_and_plan(model, config: PartitionConfig | None) -> tuple[Graph, Plan]:
    if isinstance(model, CompiledModel):
        model = model.plan
    if isinstance(model, Plan):
        return model.source, model
    if isinstance(model, QuantizedModel):
        return model.qdq, make_plan(model.qdq, config)
    raise TypeError(f"compare_layers takes a QuantizedModel, a Plan or a CompiledModel, not {type(model).__name__}")
