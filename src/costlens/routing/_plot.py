"""The cost-quality chart of a router evaluation (matplotlib, the `plot` extra, Agg backend)."""

from __future__ import annotations

from pathlib import Path

from costlens._charts import pyplot
from costlens.routing._evaluate import RouterEvaluation

__all__ = ["plot_evaluation"]


def plot_evaluation(ev: RouterEvaluation, path: str | Path, *, dpi: int = 120) -> Path:
    """Write a PNG: the router's sweep and hull, the zero router, single models, oracle, deployable point."""
    plt = pyplot()
    target = Path(path)
    scale = 1.0
    unit = "share of strong calls"
    if ev.cost_unit == "usd":
        scale, unit = 1000.0, "USD per 1,000 prompts"
    fig, ax = plt.subplots(figsize=(8, 5.5), layout="constrained")
    try:
        if ev.curve:
            xs, ys = zip(*ev.curve, strict=True)
            ax.scatter([x * scale for x in xs], ys, s=6, color="#9dc3e6", label="router, knob sweep")
        for points, style, label in ((ev.hull, "-", "router hull"), (ev.zero_hull, "--", "zero router")):
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(
                    [x * scale for x in xs],
                    ys,
                    style,
                    color="#1f4e79" if style == "-" else "#7f7f7f",
                    label=label,
                )
        for e in ev.entries:
            if e.cost is None or e.quality is None:
                continue
            if e.kind == "model":
                ax.scatter([e.cost * scale], [e.quality], color="#c0504d", s=22, zorder=3)
                ax.annotate(
                    e.name, (e.cost * scale, e.quality), fontsize=7, xytext=(4, 2), textcoords="offset points"
                )
            elif e.kind == "oracle":
                ax.scatter([e.cost * scale], [e.quality], marker="*", s=120, color="#4f8f3a", label="oracle")
            elif e.kind == "router-deployable":
                ax.scatter(
                    [e.cost * scale],
                    [e.quality],
                    marker="D",
                    s=50,
                    color="#e08a1e",
                    zorder=4,
                    label="router, knob from train",
                )
        ax.axhline(
            ev.target_quality,
            color="#8064a2",
            linestyle=":",
            linewidth=1,
            label=f"target: {ev.target:.0%} of {ev.reference}",
        )
        ax.set_xlabel(f"mean cost ({unit})")
        ax.set_ylabel("mean quality (score)")
        ax.set_title(f"Routing on {ev.rows} held-out rows of {Path(ev.source).name}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return target
