"""Per-task data-fitting losses."""

from __future__ import annotations

from typing import Any

import numpy as np

from .data import MultiTaskData, as_float_array
from .exceptions import DataError

__all__ = ["SquaredLoss"]


class SquaredLoss:
    r"""Per-task squared loss.

    .. math::

        \ell(W, b) = \sum_t \frac{c_t}{2} \lVert X_t w_t + b_t - y_t \rVert^2,
        \qquad c_t = \omega_t / n_t \ (\text{scale="mean"}),\quad
        c_t = \omega_t \ (\text{scale="sum"}).

    ``scale="mean"`` gives Σ_t 1/(2 n_t) ‖X_t w_t + b_t − y_t‖² (scikit-learn's
    ``1/(2n)`` for a shared design); ``scale="sum"`` gives Σ_t ½‖X_t w_t + b_t − y_t‖²
    (MALSAR's code). ``task_weights`` ω_t multiply each task's term. Intercepts ``b_t``
    are never penalized.

    Parameters
    ----------
    scale : {"mean", "sum"}, default "mean"
    task_weights : array_like (T,), optional
        Non-negative weight per task (default all ones).
    """

    def __init__(self, scale: str = "mean", task_weights: Any = None):
        self.scale = scale
        self.task_weights = task_weights

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "scale" and value not in ("mean", "sum"):
            raise DataError(f"scale must be 'mean' or 'sum', got {value!r}")
        if name == "task_weights" and value is not None:
            value = as_float_array(value, "task_weights", 1)
            if np.any(value < 0):
                raise DataError("task_weights must be non-negative")
        super().__setattr__(name, value)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters, scikit-learn style."""
        return {"scale": self.scale, "task_weights": self.task_weights}

    def set_params(self, **params: Any) -> SquaredLoss:
        """Set constructor parameters (validated), scikit-learn style."""
        for key, value in params.items():
            if key not in ("scale", "task_weights"):
                raise ValueError(f"SquaredLoss has no parameter {key!r}")
            setattr(self, key, value)
        return self

    def weights(self, data: MultiTaskData) -> np.ndarray:
        """Per-task factors ``c_t`` (T,) for ``data``."""
        c = 1.0 / data.n_samples if self.scale == "mean" else np.ones(data.n_tasks)
        if self.task_weights is not None:
            if self.task_weights.shape != (data.n_tasks,):
                raise DataError(
                    f"task_weights has shape {self.task_weights.shape}, "
                    f"expected ({data.n_tasks},) (one weight per task)"
                )
            c = c * self.task_weights
        return c

    def value(self, data: MultiTaskData, W: np.ndarray, intercept: np.ndarray | None) -> float:
        """Loss on the original data, in float64."""
        r = data.stacked_residuals(W, intercept)
        return 0.5 * float(self.weights(data) @ data.task_sums(r * r))

    def __repr__(self) -> str:
        extra = "" if self.task_weights is None else ", task_weights=..."
        return f"SquaredLoss(scale={self.scale!r}{extra})"
