"""The memory-layout policy the executor follows, decided here and recorded in the plan: which
partitions only move bytes (and run as a plain copy), and which tensors may stay in oneDNN's own
blocked layouts between partitions."""

from __future__ import annotations

from ..ir.graph import Graph, normalize
from ..ir.plan import ByteConcat, Partition

# Partitions whose kernels read and write oneDNN's blocked layouts at full speed.
LAYOUT_AWARE = {"Convolution", "MatMul"}


def byte_concat(partition: Partition) -> ByteConcat | None:
    """The copy a partition amounts to when it only concatenates, with the same quantization on
    every input and the output (or none at all): its result is the inputs' bytes side by side.
    oneDNN Graph 3.2 compiles int8 NHWC concats with a transposing copy of every input and of the
    output (3x the memory traffic, 1.3 ms of Inception V3's batch-1 time)."""
    ops = partition.ops
    concats = [op for op in ops if op.kind == "Concat"]
    if len(concats) != 1 or any(op.kind not in ("Concat", "Dequantize", "Quantize") for op in ops):
        return None
    concat = concats[0]
    quantizers = [op for op in ops if op.kind != "Concat"]
    params = {(tuple(op.attrs["scales"]), tuple(op.attrs["zps"]), op.attrs.get("qtype")) for op in quantizers}
    dtypes = {partition.tensors[op.inputs[0] if op.kind == "Dequantize" else op.outputs[0]].dtype
              for op in quantizers}
    if len(params) > 1 or len(dtypes) > 1:
        return None
    dequantized = {op.outputs[0]: op.inputs[0] for op in ops if op.kind == "Dequantize"}
    quantized = [op for op in ops if op.kind == "Quantize"]
    if quantizers and not (all(r in dequantized for r in concat.inputs) and len(quantized) == 1
                           and quantized[0].inputs[0] == concat.outputs[0]):
        return None
    return ByteConcat(concat.attrs["axis"], [dequantized.get(r, r) for r in concat.inputs])


def layout_free_tensors(graph: Graph, partitions: list[Partition]) -> list[str]:
    """Tensors that may stay in oneDNN's own (blocked) layout: produced by a convolution/matmul
    partition and read only by such partitions. Pooling and concat in oneDNN 3.2 fall back to
    reference kernels on some blocked layouts (measured: 30x slower), so they get plain NHWC; TF
    and the graph's outputs always do."""
    aware = [p for p in partitions if p.byte_concat is None and set(p.onednn_ops) & LAYOUT_AWARE]
    aware_nodes = {n.name for p in aware for n in p.nodes}
    outputs = {normalize(r) for r in graph.outputs}
    consumers = graph.consumers()
    return [t.name for p in aware for t in p.outputs
            if t.name not in outputs and all(c.name in aware_nodes for c in consumers.get(t.name, []))]
