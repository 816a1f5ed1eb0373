"""The digest's chart as PNG bytes: on the left, where the period's incidents ended (fixed at L1, the rest
fixed at L2, reached L4), each bar against its target line; on the right, the share fixed at L1 week by week
against its target, over the incidents opened each week.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no state shared between
renders). matplotlib writes a font cache to its config directory when first imported; where the home
directory is read-only (a container's read-only root filesystem) it is pointed at a directory under the
system's temp dir instead (`MPLCONFIGDIR`, unless that is already set).
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from bot.core.targets import TARGETS, RateTarget

if TYPE_CHECKING:
    from matplotlib.axes import Axes

Counts = Mapping[str, int]
MET, MISSED, NO_DATA, TREND, VOLUME = "#2e7d32", "#c62828", "#9e9e9e", "#1565c0", "#cfd8dc"
BAR_LABELS = {
    "resolved_l1": "Fixed at L1\n(of all)",
    "resolved_l2": "Rest fixed at L2\n(of those past L1)",
    "reached_l4": "Reached L4\n(of all)",
}
SIZE_IN, DPI = (10.0, 4.4), 100


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def prepare_config_dir() -> None:
    """Give matplotlib a writable config and cache directory before it is imported (see the docstring)."""
    if os.environ.get("MPLCONFIGDIR"):
        return
    try:
        home = Path.home()
    except RuntimeError:  # no HOME and no passwd entry
        home = None
    config = Path(os.environ.get("XDG_CONFIG_HOME") or (home or Path("/")) / ".config") / "matplotlib"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or (home or Path("/")) / ".cache") / "matplotlib"
    if home is not None and _writable(config) and _writable(cache):
        return
    fallback = Path(tempfile.gettempdir()) / f"escalation-bot-matplotlib-{os.getuid()}"
    fallback.mkdir(mode=0o700, exist_ok=True)
    os.environ["MPLCONFIGDIR"] = str(fallback)


def _rate(target: RateTarget, counts: Counts) -> float | None:
    whole = counts.get(target.whole, 0)
    return 100 * counts.get(target.part, 0) / whole if whole else None


def _funnel(ax: Axes, counts: Counts) -> None:
    rows = list(reversed(TARGETS))  # barh draws bottom-up: L1 on top
    for y, target in enumerate(rows):
        rate = _rate(target, counts)
        met = target.met(counts)
        color = NO_DATA if met is None else MET if met else MISSED
        ax.barh(y, rate or 0, height=0.6, color=color)
        of = f"{counts.get(target.part, 0)} of {counts.get(target.whole, 0)}"
        shown = "no incidents" if rate is None else f"{rate:.0f}% ({of})"
        if rate is not None and rate >= 35:  # inside the bar's end, clear of the target line
            ax.text(rate - 1.5, y, shown, va="center", ha="right", fontsize=9, color="white", weight="bold")
        else:
            ax.text((rate or 0) + 1.5, y, shown, va="center", fontsize=9)
        ax.vlines(target.percent, y - 0.42, y + 0.42, colors="black", linestyles="--", linewidth=1.2)
        ax.text(target.percent + 1, y + 0.36, target.wording, fontsize=8, va="bottom")
    ax.set_yticks(range(len(rows)), [BAR_LABELS.get(t.part, t.label) for t in rows], fontsize=9)
    ax.set_xlim(0, 115)
    ax.set_ylim(-0.6, len(rows) - 0.2)
    ax.set_xticks([0, 20, 40, 60, 80, 100], ["0%", "20%", "40%", "60%", "80%", "100%"], fontsize=8)
    ax.set_title("Where this period's incidents ended", fontsize=11)
    ax.set_xlabel("green: target met · red: missed · dashed: the target", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _trend(ax: Axes, weeks: Sequence[tuple[date, Counts]]) -> None:
    l1 = TARGETS[0]
    x = list(range(len(weeks)))
    totals = [counts.get("total", 0) for _, counts in weeks]
    rates = [_rate(l1, counts) for _, counts in weeks]
    volume = ax.twinx()
    volume.bar(x, totals, width=0.6, color=VOLUME, label="incidents opened")
    volume.set_ylabel("incidents opened", fontsize=9, color="#607d8b")
    volume.set_ylim(0, max([*totals, 1]) * 2.2)  # bars stay in the lower half, under the line
    volume.tick_params(labelsize=8, colors="#607d8b")
    ax.set_zorder(volume.get_zorder() + 1)  # the line in front of the bars
    ax.patch.set_visible(False)
    ax.plot(
        x,
        [math.nan if r is None else r for r in rates],
        marker="o",
        color=TREND,
        linewidth=2,
        label="fixed at L1",
    )
    ax.axhline(l1.percent, color=MET, linestyle="--", linewidth=1.2, label=l1.wording)
    ax.set_ylim(0, 125)  # room above 100% for the legend
    ax.set_ylabel("% fixed at Level 1", fontsize=9)
    ax.set_yticks([0, 25, 50, 75, 100], ["0%", "25%", "50%", "75%", "100%"], fontsize=8)
    ax.set_xticks(x, [f"{monday:%d %b}" for monday, _ in weeks], fontsize=8, rotation=45, ha="right")
    ax.set_xlabel("week starting (Monday, UTC)", fontsize=9)
    ax.set_title("Fixed at L1, week by week", fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    lines, labels = ax.get_legend_handles_labels()
    bars, bar_labels = volume.get_legend_handles_labels()
    ax.legend(lines + bars, labels + bar_labels, loc="upper center", ncol=3, fontsize=8, framealpha=0.9)


def render(title: str, counts: Counts, weeks: Sequence[tuple[date, Counts]]) -> bytes:
    """The chart for a period's `counts` and its weekly trend `weeks` ((Monday, counts), oldest first)."""
    prepare_config_dir()
    # imported here: matplotlib reads its config directory once, when first imported
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize=13, fontweight="bold")
    funnel, trend = fig.subplots(1, 2, width_ratios=[1, 1.25])
    _funnel(funnel, counts)
    _trend(trend, weeks)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    return out.getvalue()
