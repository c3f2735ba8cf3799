import os
import pathlib
import re

import tensorflow as tf
from conftest import graph_of
from test_partition_execute import conv_block, quantized_input

from itexlab.lower.partition import make_plan
from itexlab.report import views

GOLDEN = pathlib.Path(__file__).parent / "golden"


def small_plan():
    return make_plan(graph_of(lambda x: tf.math.cumsum(conv_block(quantized_input(x)), axis=3), (None, 10, 10, 4)))


def test_dot_matches_the_golden_file():
    dot = views.to_dot(small_plan())
    golden = GOLDEN / "small_plan.dot"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(dot)
    assert dot == golden.read_text()


def test_dot_structure():
    plan = small_plan()
    dot = views.to_dot(plan)
    for p in plan.partitions:  # collapsed: one green node per partition
        assert re.search(rf'p{p.id} \[label="P{p.id} INT8: .*fillcolor="{views.GREEN}"', dot)
    assert re.search(rf'n\d+ \[label=Cumsum fillcolor="{views.GREY}"', dot)  # the op left to TF
    assert re.search(rf'label="quint8\[\?x10x10x8\]" color="{views.INT8_EDGE}"', dot)  # an INT8 edge
    assert 'label="float32[]"' not in dot                           # QuantizeV2 min/max are not drawn
    assert "cluster_legend" in dot and "itexlab plan: " in dot
    expanded = views.to_dot(plan, expand=True)
    assert all(f"cluster_p{p.id}" in expanded for p in plan.partitions)


def test_svg_and_html():
    plan = small_plan()
    svg = views.render_svg(views.to_dot(plan))
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert svg.count(f'fill="{views.GREEN}"') >= len(plan.partitions)
    html = plan._repr_html_()
    assert html.startswith('<div class="itexlab-plan">') and "<svg" in html and "<?xml" not in html
    page = views.standalone_html(plan)
    assert "<h3>Partitions</h3>" in page and "Cumsum" in page and "zoom in" in page


def test_latency_overlay_colours_partitions_by_time():
    plan = small_plan()
    latency = {p.name: 0.001 * (i + 1) for i, p in enumerate(plan.partitions)}
    dot = views.to_dot(plan, latency=latency)
    slowest = plan.partitions[-1]
    assert f'fillcolor="{views._heat(1.0)}"' in dot and f"{1000 * latency[slowest.name]:.2f} ms" in dot
