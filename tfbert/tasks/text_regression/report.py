"""Text regression's report figure: each example's predicted score against its gold score.

`tfbert.reporting` draws one panel per run whose task lists this figure (`Task.report_figure_drawers`)
and calls `draw_scatter` with the panel and the run's evaluation report (``eval_results.json``).
It needs only the Axes it is given, so this module imports no plotting library.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def draw_scatter(ax, evaluation: dict[str, Any]) -> None:
    """Predicted (y) against gold (x) scores, the identity line, and r / rho in the corner.

    Raises:
        KeyError: the report holds no predictions (written by an older tfbert).
    """
    gold = np.asarray(evaluation["gold"], np.float64)
    predicted = np.asarray(evaluation["predictions"], np.float64)
    # Many examples share a gold score (STS-B's are multiples of 0.2): small, see-through dots.
    ax.scatter(gold, predicted, s=6 if len(gold) > 500 else 14, alpha=0.35 if len(gold) > 500 else 0.7,
               linewidths=0)
    if len(gold):
        low, high = float(min(gold.min(), predicted.min())), float(max(gold.max(), predicted.max()))
        ax.plot([low, high], [low, high], linestyle="--", color="0.4", linewidth=1)
    ax.set_xlabel("gold score")
    ax.set_ylabel("predicted score")
    ax.text(0.03, 0.97, f"Pearson {evaluation.get('pearson', float('nan')):.3f}\n"
                        f"Spearman {evaluation.get('spearman', float('nan')):.3f}\n"
                        f"MSE {evaluation.get('mse', float('nan')):.3f}",
            transform=ax.transAxes, va="top", fontsize=8,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"})


__all__ = ["draw_scatter"]
