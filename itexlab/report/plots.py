"""Matplotlib renderings of measurements (measure.timing.Report) and of per-partition profiles."""

from __future__ import annotations

from ..measure.systems import SYSTEMS
from ..measure.timing import Report


def comparison_figure(report: Report, model: str):
    """Latency per batch size (median, IQR whiskers) and speedup over FP32, one bar per system."""
    import matplotlib.pyplot as plt

    frame = report.frame()
    frame = frame[frame.model == model]
    missing = frame[frame.unavailable.notna()]
    frame = frame[frame.unavailable.isna()]
    batches = sorted(int(b) for b in frame.batch.unique())
    systems = list(dict.fromkeys(frame.system))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    width = 0.8 / len(systems)
    for k, system in enumerate(systems):
        rows = frame[frame.system == system].set_index("batch").loc[batches]
        xs = [i + k * width for i in range(len(batches))]
        left.bar(xs, rows.latency_ms, width, yerr=rows.spread_ms / 2, capsize=3, label=system,
                 color=SYSTEMS[system].colour if system in SYSTEMS else None)
        speedup = rows.speedup.astype(float)
        right.bar(xs, speedup, width, color=SYSTEMS[system].colour if system in SYSTEMS else None)
        for x, v in zip(xs, speedup):
            right.annotate(f"{v:.2f}x", (x, v), ha="center", va="bottom", fontsize=8)
    for ax, title in ((left, "latency per batch (ms, median ± IQR/2)"), (right, "speedup over TF FP32")):
        ax.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(batches))])
        ax.set_xticklabels([f"batch {b}" for b in batches])
        ax.set_title(title, fontsize=10)
    left.set_yscale("log")
    left.legend(fontsize=8)
    fig.suptitle(f"{model}: FP32 vs INT8" + (f" — {report.cpu['model']}, oneDNN {report.cpu['onednn_isa']}"
                                              if report.cpu else ""), fontsize=11)
    notes = [f"{row.system}: unavailable on this CPU — {row.unavailable}"[:150] for row in missing.itertuples()]
    if notes:
        fig.text(0.01, 0.01, "\n".join(notes), fontsize=7, color="#b2182b", va="bottom")
    fig.tight_layout(rect=(0, 0.04 * len(notes), 1, 1))
    return fig


def profile_figure(latency: dict[str, float], plan, top: int = 15):
    """Where the INT8 time goes: the slowest partitions (and TF steps) as horizontal bars."""
    import matplotlib.pyplot as plt

    ids = {p.name: f"P{p.id} " + "+".join(dict.fromkeys(n.op for n in p.compute_nodes)) for p in plan.partitions}
    items = sorted(latency.items(), key=lambda kv: -kv[1])[:top]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(items) + 1))
    ax.barh([ids.get(k, k)[:60] for k, _ in items][::-1], [1000 * v for _, v in items][::-1], color="#4d9221")
    ax.set_xlabel("ms per run")
    total = 1000 * sum(latency.values())
    ax.set_title(f"top {len(items)} of {len(latency)} steps ({total:.2f} ms in all)", fontsize=10)
    fig.tight_layout()
    return fig


def fallback_figure(history):
    """Accuracy against speedup over FP32, one point per attempt of a measure.tuning.FallbackSession
    (its `history()` frame), numbered in order; the FP32 model's accuracy as a line."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(history.speedup_vs_fp32, history.accuracy, "o-", color="#4d9221")
    for i, row in history.iterrows():
        ax.annotate(f"{i}: {row.keep_fp32}"[:40], (row.speedup_vs_fp32, row.accuracy), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.axhline(history.fp32_accuracy.iloc[0], color="#9e9e9e", linestyle="--", label="FP32 accuracy")
    ax.set_xlabel("speedup over FP32 (same sitting)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
