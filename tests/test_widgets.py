import sys

import pytest
import tensorflow as tf

from itexlab import widgets
from itexlab.partition import make_plan

from conftest import graph_of
from test_partition_execute import conv_block, quantized_input


def small_plan():
    return make_plan(graph_of(lambda x: tf.math.cumsum(conv_block(quantized_input(x)), axis=3), (None, 10, 10, 4)))


def test_inspector_lists_partitions_and_tf_ops_and_shows_details():
    plan = small_plan()
    widget = widgets.plan_widget(plan)
    controls, drawing, pick, info = widget.children
    labels = [label for label, _ in pick.options]
    assert labels[0].startswith("P0 INT8") and any(label.startswith("TF Cumsum") for label in labels)
    assert "<svg" in drawing.value and "Partition 0" in info.value
    pick.value = ("node", "Cumsum")
    assert "has no oneDNN Graph translation" in info.value
    expand = controls.children[0]
    expand.value = True
    assert all(f"<title>cluster_p{p.id}</title>" in drawing.value for p in plan.partitions)


def test_clear_message_without_ipywidgets(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    with pytest.raises(ImportError, match="pip install 'itexlab\\[notebook\\]'"):
        widgets.plan_widget(small_plan())
