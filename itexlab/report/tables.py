"""Plain data about a plan for people and scripts: what each partition holds, what it costs,
how its tensors are quantized, and why every other op stayed on TensorFlow.

Views (graph drawings, widgets, HTML) render these; they compute nothing of their own.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pandas as pd

from ..ir.graph import CONSTANT_OPS, macs
from ..ir.plan import VIEW_OPS, Plan


def partition_macs(plan: Plan, partition) -> int:
    """Multiply-accumulates per image of all the ops a partition fused."""
    return sum(macs(plan.source.node(n.name), plan.source) for n in partition.nodes)


def placement(plan: Plan) -> dict[str, str]:
    """TF node name -> "partition <id>", "view" or "TF"."""
    where = {n.name: f"partition {p.id}" for p in plan.partitions for n in p.nodes}
    where.update({v.name: "view" for v in plan.views})
    where.update({f.name: "TF" for f in plan.fallback})
    return where


def weight_bits(plan: Plan, partition) -> int | None:
    """The bits of a partition's int8 weights: 7 where the plan narrowed them for this CPU (see
    qdq.seven_bit_weights), 8 otherwise; None for a partition without int8 weights."""
    narrowed = set(plan.seven_bit_ops)
    if any(n.name in narrowed for n in partition.nodes):
        return 7
    return 8 if any(t.constant and t.dtype == "qint8" for t in partition.inputs) else None


def partitions_frame(plan: Plan, latency: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per oneDNN partition. `latency`: partition name -> seconds (CompiledModel.profile)."""
    rows = []
    for p in plan.partitions:
        ops = Counter(n.op for n in p.nodes)
        rows.append({
            "id": p.id, "name": p.name, "int8": p.quantized, "tf_ops": len(p.nodes),
            "ops": ", ".join(f"{op}×{n}" if n > 1 else op for op, n in ops.items()),
            "onednn_ops": " + ".join(p.onednn_ops),
            "inputs": ", ".join(t.describe() for t in p.inputs if not t.constant),
            "outputs": ", ".join(t.describe() for t in p.outputs),
            "weight_bits": weight_bits(plan, p),
            "macs": partition_macs(plan, p),
            "latency_ms": None if latency is None else 1000 * latency.get(p.name, float("nan")),
        })
    return pd.DataFrame(rows, columns=["id", "name", "int8", "tf_ops", "ops", "onednn_ops", "inputs", "outputs",
                                       "weight_bits", "macs", "latency_ms"])


def nodes_frame(plan: Plan) -> pd.DataFrame:
    """One row per TF op of the partitioned graph: where it runs, and why when it is not fused."""
    where = placement(plan)
    reasons = {f.name: f.reason for f in plan.fallback}
    reasons.update({v.name: f"runs as a {VIEW_OPS[v.op]} in the executor" for v in plan.views})
    narrowed = set(plan.seven_bit_ops)
    rows = [{"name": n.name, "op": n.op, "placement": where.get(n.name, "TF"),
             "reason": reasons.get(n.name, ""), "seven_bit_weights": n.name in narrowed}
            for n in plan.source.nodes if n.op not in CONSTANT_OPS and n.op != "Placeholder"]
    return pd.DataFrame(rows, columns=["name", "op", "placement", "reason", "seven_bit_weights"])


def quantization_frame(plan: Plan) -> pd.DataFrame:
    """Scales and zero points of every Quantize/Dequantize inside a partition."""
    rows = []
    for p, op in ((p, op) for p in plan.partitions for op in p.ops):
        if op.kind not in ("Quantize", "Dequantize"):
            continue
        scales, zps = np.asarray(op.attrs["scales"]), np.asarray(op.attrs["zps"])
        rows.append({"partition": p.id, "node": op.node, "kind": op.kind,
                     "qtype": op.attrs["qtype"], "channels": len(scales),
                     "scale": float(scales[0]) if len(scales) == 1 else f"{scales.min():.3g}…{scales.max():.3g}",
                     "zero_point": int(zps[0]) if len(zps) == 1 else f"{zps.min()}…{zps.max()}"})
    return pd.DataFrame(rows, columns=["partition", "node", "kind", "qtype", "channels", "scale", "zero_point"])


def layer_errors(layers: "pd.DataFrame | None") -> dict[str, tuple[float, float]]:
    """Quantizer name -> (SQNR dB, own SQNR dB), from a measure.layers.compare_layers frame."""
    if layers is None:
        return {}
    return {row.quantizer: (row.sqnr_db, row.own_sqnr_db) for row in layers.itertuples()}


def partition_details(plan: Plan, partition_id: int, latency: dict[str, float] | None = None,
                      layers: "pd.DataFrame | None" = None) -> dict:
    """Everything about one partition, as plain data (what the inspector shows); with `layers`
    (compare_layers' frame), the error of each tensor it quantizes."""
    p = plan.partitions[partition_id]
    quant = quantization_frame(plan)
    names = {n.name for n in p.nodes}
    return {
        "id": p.id, "name": p.name, "int8": p.quantized,
        "tf_ops": [dataclasses.asdict(n) for n in p.nodes],
        "onednn_ops": list(p.onednn_ops),
        "inputs": [{"name": t.name, "tensor": t.describe(), "constant": t.constant} for t in p.inputs],
        "outputs": [{"name": t.name, "tensor": t.describe()} for t in p.outputs],
        "quantization": quant[quant.partition == p.id].drop(columns="partition").to_dict("records"),
        "macs": partition_macs(plan, p),
        "weight_bits": weight_bits(plan, p),
        "latency_ms": None if latency is None or p.name not in latency else 1000 * latency[p.name],
        "layer_error": [] if layers is None else layers[layers.quantizer.isin(names)].drop(
            columns=["partition"]).to_dict("records"),
    }


def node_details(plan: Plan, name: str) -> dict:
    """Where a TF op runs and, when not fused, why."""
    row = nodes_frame(plan).set_index("name").loc[name]
    return {"name": name, "op": row["op"], "placement": row["placement"], "reason": row["reason"]}
