"""JupyterLab widgets: state and layout only. Every number comes from `itexlab.report.tables` or
`itexlab.measure`, every picture from `itexlab.report.views`."""

from __future__ import annotations

from ..ir.plan import Plan
from . import tables, views


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError as e:  # an optional dependency: the views work without it
        raise ImportError("itexlab's widgets need ipywidgets: pip install 'itexlab[notebook]'") from e
    return ipywidgets


def selection_options(plan: Plan) -> list[tuple[str, tuple[str, object]]]:
    """The inspector's list: every partition, then every op left to TF or run as a view."""
    options = [(f"P{p.id} {'INT8' if p.quantized else 'FP32'}: " + " + ".join(dict.fromkeys(n.op for n in p.nodes)),
                ("partition", p.id)) for p in plan.partitions]
    options += [(f"TF {f.op}: {f.name}", ("node", f.name)) for f in plan.fallback]
    options += [(f"view {v.op}: {v.name}", ("node", v.name)) for v in plan.views]
    return options


def details(plan: Plan, selection: tuple[str, object], latency: dict[str, float] | None = None,
            layers=None) -> dict:
    kind, key = selection
    if kind == "partition":
        return tables.partition_details(plan, key, latency, layers)
    return tables.node_details(plan, key)


def plan_widget(plan: Plan, latency: dict[str, float] | None = None, layers=None):
    """The partition graph with collapse/expand, zoom and an inspector for any partition or op;
    with `layers` (measure.layers.compare_layers' frame), coloured by each tensor's INT8 error."""
    errors = tables.layer_errors(layers)
    w = _ipywidgets()
    expand = w.ToggleButton(value=False, description="expand partitions", icon="expand")
    zoom = w.FloatSlider(value=1.0, min=0.2, max=3.0, step=0.1, description="zoom", readout_format=".1f")
    pick = w.Dropdown(options=selection_options(plan), description="inspect", layout=w.Layout(width="95%"))
    drawing, info = w.HTML(), w.HTML()
    rendered: dict[object, str] = {}  # one `dot` run per drawing; zooming only restyles it

    def redraw(_=None):
        selected = {pick.value[1]} if pick.value and pick.value[0] == "partition" else set()
        key = True if expand.value else frozenset(selected)
        if key not in rendered:
            rendered[key] = views.plan_html(plan, key, latency, errors=errors)
        drawing.value = rendered[key].replace("<svg ", f'<svg style="zoom:{zoom.value}" ', 1)

    def show(_=None):
        if pick.value:
            info.value = views.details_html(details(plan, pick.value, latency, layers))
        redraw()

    expand.observe(redraw, "value")
    zoom.observe(redraw, "value")
    pick.observe(show, "value")
    show()
    return w.VBox([w.HBox([expand, zoom]), drawing, pick, info])


def comparison_widget(comparison, repeats: int = 20):
    """FP32 vs INT8 legacy vs itexlab INT8 for one workload, with a button to (re)measure."""
    w = _ipywidgets()
    from IPython.display import clear_output, display

    from . import plots

    button = w.Button(description="run measurement", icon="play", button_style="success")
    bar = w.IntProgress(min=0, max=1, description="idle")
    output = w.Output()

    def progress(what: str, done: int, total: int) -> None:
        bar.description, bar.max, bar.value = what, total, done

    def run(_=None):
        button.disabled = True
        try:
            report = comparison.measure(repeats, progress=progress)
            with output:
                clear_output(wait=True)
                display(report.frame())
                slower = report.slower_lines(comparison.workload.name)
                if slower:
                    display(w.HTML(views.warning_html(slower)))
                display(plots.comparison_figure(report, comparison.workload.name))
        finally:
            button.disabled = False
        return report

    button.on_click(run)
    box = w.VBox([w.HBox([button, bar]), output])
    box.run = run  # for scripts and tests: the same action as the button
    return box


def fallback_widget(session, layers=None):
    """The plan of a measure.tuning.FallbackSession with a "keep in FP32" button: the selected
    partition's ops (or the selected TF op) join those kept in FP32, the model is re-planned and
    re-measured, and the attempt goes into the history table below."""
    w = _ipywidgets()
    keep = w.Button(description="keep in FP32", icon="undo", tooltip="re-plan with the selection in FP32")
    status, history = w.HTML(), w.HTML(session.history().to_html(index=True, border=0, float_format="%.4g"))
    box = w.VBox()

    def rebuild():
        viewer = plan_widget(session.plan, layers=layers)
        box.children = [viewer, w.HBox([keep, status]), history]
        return viewer

    viewer = [rebuild()]

    def on_keep(_):
        pick = viewer[0].children[2].value
        if not pick:
            return
        kind, key = pick
        chosen = session.partition_ops(key) if kind == "partition" else [key]
        status.value = f"re-planning with {len(chosen)} more op(s) in FP32..."
        attempt = session.attempt(session.attempts[-1].keep_fp32 + tuple(chosen))
        status.value = (f"accuracy {attempt.accuracy:.4f} (FP32 {attempt.fp32_accuracy:.4f}), "
                        f"{attempt.speedup:.2f}x over FP32")
        history.value = session.history().to_html(index=True, border=0, float_format="%.4g")
        viewer[0] = rebuild()

    keep.on_click(on_keep)
    return box
