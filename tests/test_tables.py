import numpy as np
import tensorflow as tf
from conftest import graph_of
from test_partition_execute import W1, X, conv_block, quantized_input

from itexlab.ir.graph import macs, total_macs
from itexlab.ir.plan import counts
from itexlab.lower.partition import make_plan
from itexlab.lower.qparams import quant_params
from itexlab.measure.probe import int8_conv_chain
from itexlab.report import tables
from itexlab.runtime.executor import CompiledModel


def plan_with_fallback():
    return make_plan(graph_of(lambda x: tf.math.cumsum(conv_block(quantized_input(x)), axis=3), (None, 10, 10, 4)))


def test_counts_and_mac_share():
    plan = plan_with_fallback()
    c = counts(plan)
    assert (c.partitions, c.tf_ops) == (len(plan.partitions), 2)  # Cumsum and the output Identity
    assert c.int8_mac_share == 1.0
    conv = next(n for n in plan.source.nodes if n.op == "Conv2D")
    assert macs(conv, plan.source) == 10 * 10 * W1.size
    assert "100.0% of MACs in INT8 partitions" in c.headline()
    assert total_macs(plan.source) == 10 * 10 * W1.size


def test_total_macs_counts_every_convolution():
    graph = int8_conv_chain(size=6, channels=8, depth=3)
    assert total_macs(graph) == 3 * (6 * 6) * (3 * 3 * 8 * 8)


def test_tables():
    plan = plan_with_fallback()
    model = CompiledModel(plan)
    latency = dict(model.profile(X, repeats=2))
    parts = tables.partitions_frame(plan, latency)
    assert list(parts.id) == list(range(len(plan.partitions)))
    conv_row = parts[parts.ops.str.contains("Conv2D")].iloc[0]
    assert conv_row.int8 and conv_row.macs == 10 * 10 * W1.size and conv_row.latency_ms > 0
    nodes = tables.nodes_frame(plan).set_index("name")
    assert nodes.loc["Cumsum", "placement"] == "TF"
    assert nodes.loc["Cumsum", "reason"] == "op Cumsum has no oneDNN Graph translation"
    assert nodes.loc["Conv2D", "placement"].startswith("partition ")


def test_quantization_parameters_are_reported():
    plan = plan_with_fallback()
    quant = tables.quantization_frame(plan)
    weights = quant[(quant.qtype == "per_channel")].iloc[0]
    assert weights.channels == 8 and weights.kind == "Dequantize"
    activation = quant[quant.node == "QuantizeV2"].iloc[0]  # the input quantizer, range [-1, 1]
    expected, _ = quant_params(plan.source.node("QuantizeV2"), np.float32(-1), np.float32(1))
    assert np.isclose(activation.scale, expected[0]) and activation.zero_point == 0
    conv_partition = next(p for p in plan.partitions if "Conv2D" in {n.op for n in p.nodes})
    details = tables.partition_details(plan, conv_partition.id)
    assert details["int8"] and "Convolution" in details["onednn_ops"]
    assert any(q["qtype"] == "per_channel" for q in details["quantization"])
    assert tables.node_details(plan, "Cumsum")["placement"] == "TF"


def test_weight_ranges_follow_the_weights():
    plan = make_plan(graph_of(lambda x: conv_block(quantized_input(x)), (None, 10, 10, 4)))
    quant = tables.quantization_frame(plan)
    row = quant[quant.qtype == "per_channel"].iloc[0]
    low, high = (float(v) for v in row.scale.split("…"))
    per_channel = np.abs(W1).max(axis=(0, 1, 2)) / 127
    assert np.isclose(low, per_channel.min(), rtol=1e-2) and np.isclose(high, per_channel.max(), rtol=1e-2)
