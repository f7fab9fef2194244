"""Convergence and path plots (needs the ``plot`` extra: matplotlib, imported lazily)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._optional import require

__all__ = ["plot_convergence", "plot_path", "plot_task_matrix"]


def _positive(values: np.ndarray) -> np.ndarray:
    """Values with non-positive and non-finite entries masked (NaN) for a log axis."""
    out = np.asarray(values, dtype=float).copy()
    out[~(np.isfinite(out) & (out > 0))] = np.nan
    return out


def plot_convergence(
    report_or_trace: Any,
    ax: Any = None,
    label: str | None = None,
    *,
    thresholds: bool | Sequence[float] = False,
    reference_objective: float | None = None,
) -> Any:
    """Semilog plot of the relative suboptimality against the iteration.

    Parameters
    ----------
    report_or_trace : ValidationReport or Trace
        A :class:`~mtlcvx.validation.ValidationReport` draws its relative suboptimality
        ``(F − F_ref)/max(1, |F_ref|)`` (and, when it was built from a Trace, the trace's
        certified relative gap, dashed). A :class:`~mtlcvx.first_order.Trace` draws its
        certified relative gap ``gap / |F|`` (as ``Certificate.relative_gap``) where it
        was computed (a bound on the relative suboptimality that needs no reference),
        plus the relative
        suboptimality when ``reference_objective`` is given.
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure is made when None. ``plt.show()`` is never called.
    label : str, optional
        Legend label of the suboptimality line (the gap line gets "… (certified gap)").
    thresholds : bool or sequence of float, default False
        Horizontal dotted lines: True draws the report's thresholds, a sequence draws
        those values.
    reference_objective : float, optional
        ``F_ref`` for a Trace (ignored for a report, which carries its own).

    Returns
    -------
    matplotlib.axes.Axes

    Notes
    -----
    Points where the plotted value is zero, negative (an iterate at or below the
    reference's objective, at round-off level) or not finite are left out: a log axis
    cannot show them.
    """
    plt = require("matplotlib.pyplot", "plot", "plot_convergence")
    if ax is None:
        _, ax = plt.subplots()
    name = "" if label is None else label
    is_report = hasattr(report_or_trace, "suboptimality")
    if is_report:
        rep = report_or_trace
        it = np.asarray(rep.iterations)
        sub_line = ax.plot(it, _positive(rep.suboptimality), label=label or "suboptimality")
        gap = rep.gap
        default_thr: Sequence[float] = rep.thresholds
    else:
        hist = report_or_trace.history
        it = np.asarray(hist["iteration"])
        F = np.asarray(hist["objective"], dtype=float)
        sub_line = None
        if reference_objective is not None:
            sub = (F - reference_objective) / max(1.0, abs(reference_objective))
            sub_line = ax.plot(it, _positive(sub), label=label or "suboptimality")
        gap = None
        if "gap" in hist:
            raw = np.asarray(hist["gap"], dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                gap = np.where(raw == 0.0, 0.0, raw / np.abs(F))
        default_thr = (1e-2, 1e-4, 1e-6, 1e-8)
    if gap is not None and np.any(np.isfinite(gap)):
        keep = np.isfinite(gap)
        style: dict[str, Any] = {"linestyle": "--", "marker": "." if keep.sum() < 50 else None}
        if sub_line is not None:
            style["color"] = sub_line[0].get_color()
        gap_label = f"{name} (certified gap)" if name else "certified gap"
        ax.plot(it[keep], _positive(gap[keep]), label=gap_label, **style)
    if thresholds is not False and thresholds is not None:
        levels = default_thr if thresholds is True else thresholds
        for level in levels:
            ax.axhline(float(level), color="0.6", linestyle=":", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("relative suboptimality (F − F_ref)/max(1, |F_ref|)")
    labelled = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    if label is not None or len(labelled) > 1:
        ax.legend()
    return ax


def plot_path(path: Any, ax: Any = None, *, objective: bool = True) -> Any:
    """Coefficient norms per feature against the strength, on a log alpha axis.

    Draws ``‖W_j,:‖₂`` (the norm of feature ``j`` across tasks) for every feature
    against ``alpha``, and the objective on a second y axis (dashed, black).

    Parameters
    ----------
    path : PathResult
        From :func:`mtlcvx.regularization_path`.
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure is made when None. ``plt.show()`` is never called.
    objective : bool, default True
        Also draw the objective ``F(W)`` against alpha (right-hand axis).

    Returns
    -------
    matplotlib.axes.Axes
        The axes holding the coefficient norms.
    """
    plt = require("matplotlib.pyplot", "plot", "plot_path")
    if ax is None:
        _, ax = plt.subplots()
    order = np.argsort(path.alphas)
    alphas = np.asarray(path.alphas)[order]
    norms = np.linalg.norm(np.asarray(path.W)[order], axis=2)  # (n_alphas, d)
    ax.plot(alphas, norms)
    ax.set_xscale("log")
    ax.set_xlabel("alpha")
    ax.set_ylabel("‖W_j,:‖₂ per feature")
    if objective:
        right = ax.twinx()
        right.plot(alphas, np.asarray(path.objective)[order], "k--", label="objective")
        right.set_ylabel("objective F(W)")
    return ax


def plot_task_matrix(matrix: Any, labels: Any = None, ax: Any = None) -> Any:
    """Heatmap of a learned (or given) task or feature matrix.

    Parameters
    ----------
    matrix : array_like (n, n)
        For example ``res.matrix`` or ``res.coupling`` of
        :func:`mtlcvx.learn_relation` (Ω, D or M), or a fixed ``K``.
    labels : array_like (n,) of int, optional
        A cluster per row (``res.labels``): rows and columns are then ordered by cluster
        (stable, so the original order is kept within a cluster) and the cluster
        boundaries are drawn.
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure is made when None. ``plt.show()`` is never called.

    Returns
    -------
    matplotlib.axes.Axes
        With a colorbar on a diverging scale centred at 0.
    """
    plt = require("matplotlib.pyplot", "plot", "plot_task_matrix")
    M = np.asarray(matrix, dtype=float)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"matrix must be square (n, n), got shape {M.shape}")
    if ax is None:
        _, ax = plt.subplots()
    order = np.arange(M.shape[0])
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (M.shape[0],):
            raise ValueError(f"labels must have shape ({M.shape[0]},), got {labels.shape}")
        order = np.argsort(labels, kind="stable")
    scale = float(np.abs(M).max()) or 1.0
    image = ax.imshow(M[np.ix_(order, order)], cmap="RdBu_r", vmin=-scale, vmax=scale,
                      interpolation="nearest")
    ax.figure.colorbar(image, ax=ax)
    if labels is not None:
        sorted_labels = labels[order]
        for edge in np.flatnonzero(sorted_labels[1:] != sorted_labels[:-1]) + 0.5:
            ax.axhline(edge, color="k", linewidth=0.8)
            ax.axvline(edge, color="k", linewidth=0.8)
        ax.set_xlabel("task (ordered by cluster)")
    else:
        ax.set_xlabel("task")
    ax.set_ylabel(ax.get_xlabel())
    return ax
