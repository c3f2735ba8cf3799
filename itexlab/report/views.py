"""Renderings of a plan: a graphviz drawing (DOT, SVG) and HTML. Thin renderings of the plain
data in `itexlab.report.tables`; nothing here knows TensorFlow or oneDNN."""

from __future__ import annotations

import html

from ..ir.graph import CONSTANT_OPS, QUANTIZED_DTYPES, split_ref
from ..ir.plan import Plan, counts
from ..ir.speed import SpeedCheck
from . import tables

GREEN, GREEN_EDGE, GREY, INT8_EDGE, FP32_EDGE = "#b8e186", "#4d9221", "#e0e0e0", "#1b7837", "#9e9e9e"


def _short(name: str) -> str:
    return name.rsplit("/", 2)[-2] + "/" + name.rsplit("/", 1)[-1] if name.count("/") >= 2 else name


def _op_label(op: str, name: str) -> str:
    """The op type, and the end of its node name when that says more."""
    return op if _short(name) == op else f"{op}\n{_short(name)}"


def _heat(share: float) -> str:
    """Light yellow (no time) to red (the slowest partition)."""
    r, g, b = 255, int(245 - 200 * share), int(200 - 180 * share)
    return f"#{r:02x}{max(g, 0):02x}{max(b, 0):02x}"


def _quality(sqnr_db: float) -> str:
    """Red (10 dB or less: the tensor is mostly error) through yellow to green (40 dB or more)."""
    t = min(max((sqnr_db - 10.0) / 30.0, 0.0), 1.0)
    r, g = (255, int(80 + 175 * 2 * t)) if t < 0.5 else (int(255 - 2 * (t - 0.5) * 155), 235)
    return f"#{r:02x}{min(g, 255):02x}70"


def to_dot(plan: Plan, expand: bool | set[int] = False, latency: dict[str, float] | None = None,
           errors: dict[str, tuple[float, float]] | None = None, worst: int = 3) -> str:
    """The partitioned graph in DOT. Partitions are green boxes (collapsed to one node unless
    `expand` is True or holds their id); TF ops grey; INT8 edges dark green and bold. With
    `latency` (partition name -> seconds), partitions are coloured by their share of the time.
    With `errors` (quantizer name -> (SQNR dB, own SQNR dB), from measure.layers.compare_layers),
    partitions are coloured by the worst SQNR of the tensors they quantize, INT8 edges show their
    SQNR, and the `worst` partitions where error enters (lowest own SQNR) are marked."""
    import graphviz

    graph = plan.source
    where = tables.placement(plan)
    expanded = {p.id for p in plan.partitions} if expand is True else set(expand or ())
    slowest = max(latency.values()) if latency else 0.0
    errors = errors or {}
    quality = {p.id: min((errors[n.name][0] for n in p.nodes if n.name in errors), default=None)
               for p in plan.partitions}
    entering = {p.id: min((errors[n.name][1] for n in p.nodes if n.name in errors), default=None)
                for p in plan.partitions}
    culprits = set(sorted((pid for pid, v in entering.items() if v is not None), key=entering.get)[:worst])
    unit_of: dict[str, str] = {}
    for index, node in enumerate(graph.nodes):
        placed = where.get(node.name, "")
        if placed.startswith("partition "):
            pid = int(placed.split()[1])
            unit_of[node.name] = f"n{index}" if pid in expanded else f"p{pid}"
        elif node.op not in CONSTANT_OPS:
            unit_of[node.name] = f"n{index}"

    dot = graphviz.Digraph("plan", graph_attr={
        "rankdir": "TB", "newrank": "true", "label": "itexlab plan: " + counts(plan).headline(),
        "labelloc": "t", "fontname": "Helvetica", "fontsize": "16"},
        node_attr={"fontname": "Helvetica", "fontsize": "10", "shape": "box", "style": "rounded,filled",
                   "fillcolor": "#ffffff"},
        edge_attr={"fontname": "Helvetica", "fontsize": "8"})
    for p in plan.partitions:
        fill = _heat(latency.get(p.name, 0.0) / slowest) if latency and slowest else GREEN
        timing = f"\n{1000 * latency[p.name]:.2f} ms" if latency and p.name in latency else ""
        if quality.get(p.id) is not None:
            fill = _quality(quality[p.id])
            timing += f"\nSQNR {quality[p.id]:.1f} dB"
            if p.id in culprits:
                timing += f"\n\u26a0 error enters here (own {entering[p.id]:.1f} dB)"
        title = f"P{p.id} {'INT8' if p.quantized else 'FP32'}: {' + '.join(dict.fromkeys(n.op for n in p.nodes))}"
        if p.id in expanded:
            with dot.subgraph(name=f"cluster_p{p.id}", graph_attr={
                    "label": title, "style": "rounded,filled", "fillcolor": fill, "color": GREEN_EDGE}) as cluster:
                for n in p.nodes:
                    cluster.node(unit_of[n.name], _op_label(n.op, n.name), fillcolor="#f7fcf0", tooltip=n.name)
        else:
            dot.node(f"p{p.id}", title + f" ({len(p.nodes)} ops)" + timing, fillcolor=fill, color=GREEN_EDGE,
                     penwidth="2", tooltip=p.name, id=f"partition-{p.id}")
    for node in graph.nodes:
        placed = where.get(node.name)
        if node.op == "Placeholder":
            dot.node(unit_of[node.name], "input " + node.name, shape="invhouse", fillcolor="#d1e5f0")
        elif placed == "view":
            dot.node(unit_of[node.name], _op_label(node.op, node.name), style="rounded,dashed", tooltip=node.name)
        elif placed == "TF":
            dot.node(unit_of[node.name], _op_label(node.op, node.name), fillcolor=GREY, tooltip=node.name)
    seen = set()
    for node in graph.nodes:
        if node.name not in unit_of:
            continue
        for r in node.inputs:
            source = split_ref(r)[0]
            if source not in unit_of or unit_of[source] == unit_of[node.name] or graph.is_range_output(r):
                continue
            key = (unit_of[source], unit_of[node.name], r)
            if key in seen:
                continue
            seen.add(key)
            info = graph.tensor(r)
            color, width = (INT8_EDGE, "2.2") if info.dtype in QUANTIZED_DTYPES else (FP32_EDGE, "1.0")
            label = info.describe() + (f" · {errors[source][0]:.1f} dB" if source in errors else "")
            dot.edge(key[0], key[1], label, color=color, fontcolor=color, penwidth=width)
    for i, r in enumerate(graph.outputs):
        dot.node(f"out{i}", "output " + r, shape="house", fillcolor="#d1e5f0")
        dot.edge(unit_of.get(split_ref(r)[0], "p0"), f"out{i}", graph.tensor(r).describe())
    with dot.subgraph(name="cluster_legend", graph_attr={"label": "legend", "fontsize": "10", "style": "rounded",
                                                          "color": "#bdbdbd"}) as legend:
        legend.node("legend_p", "oneDNN partition", fillcolor=GREEN, color=GREEN_EDGE)
        legend.node("legend_tf", "TF op", fillcolor=GREY)
        legend.node("legend_v", "view or reorder in the executor", style="rounded,dashed")
        for point in "abcd":
            legend.node(f"legend_{point}", shape="point", width="0.05")
        legend.edge("legend_a", "legend_b", "INT8 tensor", color=INT8_EDGE, penwidth="2.2")
        legend.edge("legend_c", "legend_d", "FP32 tensor", color=FP32_EDGE)
    return dot.source


def render_svg(dot: str) -> str:
    """SVG text from DOT, through graphviz's `dot` program."""
    import graphviz

    try:
        return graphviz.Source(dot).pipe(format="svg").decode()
    except graphviz.ExecutableNotFound as e:
        raise RuntimeError("the graph view needs graphviz's `dot` program: apt-get install graphviz "
                           "(the README's set-up command installs it)") from e


def plan_html(plan: Plan, expand: bool | set[int] = False, latency: dict[str, float] | None = None,
              max_height: int = 700, errors: dict[str, tuple[float, float]] | None = None) -> str:
    """A self-contained HTML block: headline, the SVG drawing in a scrollable (pannable) box."""
    svg = render_svg(to_dot(plan, expand, latency, errors))
    svg = svg[svg.index("<svg"):]  # drop the XML prologue so it embeds in a page
    return (f'<div class="itexlab-plan"><div style="font:14px sans-serif;margin:4px 0">'
            f"<b>itexlab plan</b>: {html.escape(counts(plan).headline())}</div>{speed_html(plan.speed)}"
            f'<div style="overflow:auto;max-height:{max_height}px;border:1px solid #ddd">{svg}</div></div>')


def speed_html(check: SpeedCheck | None) -> str:
    """INT8 against FP32 as the first run measured it: one line, or a red box naming the causes."""
    if check is None:
        return ""
    if not check.slower:
        return f'<div style="font:13px sans-serif;margin:4px 0">{html.escape(check.headline())}</div>'
    return warning_html(check.summary_lines())


def warning_html(lines: list[str]) -> str:
    """Lines worth acting on, in a red box: the first bold, the rest as they are indented."""
    body = "<br>".join(html.escape(line).replace("  ", "&nbsp;&nbsp;") for line in lines[1:])
    return ('<div style="font:13px sans-serif;margin:4px 0;padding:6px;border:1px solid #c62828;'
            f'background:#ffebee"><b>{html.escape(lines[0])}</b><br>{body}</div>')


def standalone_html(plan: Plan, expand: bool | set[int] = False, latency: dict[str, float] | None = None) -> str:
    """A page for the CLI's --html: the drawing with zoom buttons, and the partition table."""
    table = tables.partitions_frame(plan, latency).to_html(index=False, border=0)
    fallback = tables.nodes_frame(plan)
    fallback = fallback[fallback.placement == "TF"].to_html(index=False, border=0)
    script = ("<script>function z(f){const s=document.querySelector('.itexlab-plan svg');"
              "const w=parseFloat(s.getAttribute('width'));s.setAttribute('width',w*f+'pt');"
              "const h=parseFloat(s.getAttribute('height'));s.setAttribute('height',h*f+'pt');}</script>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>itexlab plan</title>"
            "<style>body{font:13px sans-serif}table{border-collapse:collapse}td,th{padding:2px 6px;"
            "border-bottom:1px solid #eee;text-align:left}</style></head><body>"
            f"<button onclick='z(1.25)'>zoom in</button><button onclick='z(0.8)'>zoom out</button>"
            f"{plan_html(plan, expand, latency, max_height=900)}<h3>Partitions</h3>{table}"
            f"<h3>Left to TensorFlow</h3>{fallback}{script}</body></html>")


def details_html(details: dict) -> str:
    """One partition's or one TF op's details (from tables.partition_details / node_details)."""
    if "onednn_ops" not in details:
        return (f"<b>{html.escape(details['op'])}</b> <code>{html.escape(details['name'])}</code><br>"
                f"runs on: {html.escape(details['placement'])}<br>"
                f"why: {html.escape(details['reason'] or 'fused')}")
    rows = "".join(f"<tr><td>{html.escape(n['op'])}</td><td><code>{html.escape(n['name'])}</code></td></tr>"
                   for n in details["tf_ops"])
    tensors = "".join(f"<li>in: <code>{html.escape(t['tensor'])}</code>{' (constant)' if t['constant'] else ''}"
                      f" {html.escape(t['name'])}</li>" for t in details["inputs"])
    tensors += "".join(f"<li>out: <code>{html.escape(t['tensor'])}</code> {html.escape(t['name'])}</li>"
                       for t in details["outputs"])
    quant = "".join(f"<tr><td>{html.escape(q['kind'])}</td><td>{html.escape(q['qtype'])}</td>"
                    f"<td>{html.escape(str(q['scale']))}</td><td>{html.escape(str(q['zero_point']))}</td>"
                    f"<td><code>{html.escape(q['node'])}</code></td></tr>" for q in details["quantization"])
    latency = "" if details["latency_ms"] is None else f" · measured {details['latency_ms']:.3f} ms"
    if details["weight_bits"] == 7:
        latency += " · 7-bit weights (this CPU's int8 kernels sum weight pairs in int16)"
    return (f"<b>Partition {details['id']}</b> ({'INT8' if details['int8'] else 'FP32'}) "
            f"<code>{html.escape(details['name'])}</code><br>oneDNN ops: {html.escape(' + '.join(details['onednn_ops']))}"
            f"<br>{details['macs']:,} MACs per image{latency}<table>{rows}</table><ul>{tensors}</ul>"
            f"<table><tr><th>kind</th><th>qtype</th><th>scale</th><th>zero point</th><th>node</th></tr>{quant}</table>"
            + _layer_error_html(details.get("layer_error") or []))


def _layer_error_html(rows: list[dict]) -> str:
    """The INT8 error of each tensor a partition quantizes (compare_layers' rows)."""
    if not rows:
        return ""
    body = "".join(f"<tr style='background:{_quality(r['sqnr_db'])}'><td>{r['sqnr_db']:.1f}</td>"
                   f"<td>{r['own_sqnr_db']:.1f}</td><td>{r['max_diff_steps']:.1f}</td><td>{r['cosine']:.5f}</td>"
                   f"<td><code>{html.escape(r['tensor'])}</code></td></tr>" for r in rows)
    return ("<br><b>INT8 error</b> (FP32 model vs this INT8 run)<table><tr><th>SQNR dB</th><th>own SQNR dB</th>"
            f"<th>max diff, steps</th><th>cosine</th><th>tensor</th></tr>{body}</table>")
