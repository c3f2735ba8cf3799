import sys

import pytest
import tensorflow as tf
from conftest import graph_of
from test_partition_execute import conv_block, quantized_input

from itexlab.lower.partition import make_plan
from itexlab.report import widgets


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


def test_zoom_restyles_the_drawing_without_running_dot_again(monkeypatch):
    from itexlab.report import views

    renders = []
    render_svg = views.render_svg
    monkeypatch.setattr(views, "render_svg", lambda dot: renders.append(dot) or render_svg(dot))
    widget = widgets.plan_widget(small_plan())
    controls, drawing, _, _ = widget.children
    expand, zoom = controls.children
    zoom.value = 2.0
    assert len(renders) == 1 and 'style="zoom:2.0"' in drawing.value
    expand.value = True
    expand.value = False
    zoom.value = 0.5
    assert len(renders) == 2 and 'style="zoom:0.5"' in drawing.value
