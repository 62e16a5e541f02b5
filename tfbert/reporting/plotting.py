"""Shared matplotlib pieces of the report's figures: colours, panels, smoothing, `Skipped`.

Only the Agg backend is used (no display needed).
"""
from __future__ import annotations

import math
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tfbert.reporting.runs import RunData  # noqa: E402

COLORS = plt.get_cmap("tab10").colors
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")
DPI = 110


class Skipped(Exception):
    """A figure that cannot be drawn for these runs; the message says why."""


def run_color(index: int):
    """The colour of the `index`-th run (tab10, cycling)."""
    return COLORS[index % len(COLORS)]


def new_figure(panels: int = 1, width: float = 9.0, height: float = 3.8, sharex: bool = False,
               sharey: bool = False):
    fig, axes = plt.subplots(1, panels, figsize=(width, height), sharex=sharex, sharey=sharey, squeeze=False)
    return fig, list(axes[0])


def finish(fig: Figure, axes: Sequence, legend: bool = True, grid: bool = True) -> Figure:
    for ax in axes:
        if grid:
            ax.grid(True, alpha=0.3)
        else:
            ax.grid(False)
        if legend and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def smoothed(values: Sequence[float], weight: float = 0.6) -> np.ndarray:
    """TensorBoard's exponential moving average, debiased so the first points are not pulled to 0.

    Args:
        values: the raw series.
        weight: how much each point keeps of the previous average (0: no smoothing).
    """
    out, last, count = [], 0.0, 0
    for value in values:
        if not math.isfinite(value):
            out.append(value)
            continue
        last = last * weight + (1 - weight) * value
        count += 1
        out.append(last / (1 - weight ** count))
    return np.asarray(out)


def series_label(run: RunData, runs: Sequence[RunData], what: str = "") -> str:
    if len(runs) == 1:
        return what
    return f"{run.name}: {what}" if what else run.name


def task_figures() -> dict[str, set[str]]:
    """Figure name -> the task types that draw it (`Task.report_figures`); others leave it out silently."""
    from tfbert.tasks.registry import task_classes

    owners: dict[str, set[str]] = {}
    for cls in task_classes():
        for name in cls.report_figures:
            owners.setdefault(name, set()).add(cls.type)
    return owners
