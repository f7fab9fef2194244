"""scikit-learn estimators; needs the ``sklearn`` extra (``pip install 'mtlcvx[sklearn]'``).

:class:`MultiTaskRegressor` wraps :class:`~mtlcvx.Problem` in scikit-learn's estimator
contract, so mtlcvx models work in ``GridSearchCV``, ``cross_val_score`` and ``Pipeline``.
The core package never imports this module; ``mtlcvx.MultiTaskRegressor`` loads it on
first use.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from ._optional import require

require("sklearn", "sklearn", "mtlcvx.MultiTaskRegressor")

from sklearn.base import BaseEstimator, RegressorMixin, clone  # noqa: E402
from sklearn.utils.validation import check_is_fitted, validate_data  # noqa: E402

from .data import MultiTaskData, check_labels  # noqa: E402
from .exceptions import ArgumentError, DataError  # noqa: E402
from .losses import SquaredLoss  # noqa: E402
from .penalties import Penalty, Ridge  # noqa: E402
from .problem import Problem  # noqa: E402

__all__ = ["MultiTaskRegressor"]

_PENALTIES = "penalties"


def _default_penalties() -> list[Penalty]:
    return [Ridge(alpha=1e-3)]


class MultiTaskRegressor(RegressorMixin, BaseEstimator):
    r"""Multi-task linear regression solved to a certified optimum, scikit-learn style.

    Fits

    .. math::

        \min_{W, b}\ \sum_t \frac{c_t}{2}\lVert X_t w_t + b_t - y_t\rVert^2
        + \sum_i P_i(W)

    with ``c_t = 1/n_t`` (``scale="mean"``, scikit-learn's ``1/(2n)`` per task) or
    ``c_t = 1`` (``scale="sum"``), by :meth:`mtlcvx.Problem.solve`.

    Two input layouts:

    * ``task_col=None`` (shared design): every task sees the same rows.
      ``fit(X, Y)`` with ``X`` (n, d) and ``Y`` (n, T), one column per task (a 1-D ``y``
      is one task). ``predict`` returns (n, T) (or (n,) after a 1-D ``y``); ``score``
      is the R² of each task averaged uniformly over tasks (scikit-learn's
      ``r2_score(..., multioutput="uniform_average")``). Task labels are the columns of
      ``Y`` when it is a DataFrame, else ``0 … T−1``.
    * ``task_col`` given (long format, tasks of different sizes): one row per sample,
      ``X`` holds the task label of the row in column ``task_col`` (a column name for a
      DataFrame, a column index for an array) and the features in the other columns;
      ``y`` is (n,). The label travels with the row, so ``GridSearchCV``,
      ``cross_val_score`` and ``Pipeline`` split and predict correctly. ``score`` is
      the *pooled* R², ``1 − Σ (y − ŷ)² / Σ (y − ȳ)²`` over all rows of all tasks
      (``ȳ`` the mean of every row: the "explained variance" of the School
      literature). A task seen at ``predict`` but not in ``fit`` raises a ValueError
      naming it; use folds stratified by task
      (``StratifiedKFold(k).split(X, X[task_col])``) to keep every task in training.

    Parameters
    ----------
    penalties : sequence of Penalty, or None
        The penalties ``P_i``; ``None`` means ``[mc.Ridge(alpha=1e-3)]``. Never
        mutated: ``fit`` and :meth:`set_params` work on clones.
    backend : str or None
        Passed to :meth:`mtlcvx.Problem.solve`. ``None``: the package's default rule
        (the exact "direct" solve when every penalty is quadratic, else the certified
        route estimated fastest, "fista" or Clarabel); ``solution_.backend`` says which.
    tol : float, default 1e-8
        Target certified relative gap of the solve.
    fit_intercept : bool, default True
        Fit one unpenalised intercept per task.
    task_col : column name, column index or None
        Where the task label is in ``X`` (long format); None for a shared design.
    scale : {"mean", "sum"}, default "mean"
        The loss's per-task scale, see :class:`mtlcvx.SquaredLoss`.

    Attributes
    ----------
    coef_ : ndarray (T, d), or (d,) after a 1-D ``y`` with a shared design
        Row ``t`` is task ``t``'s coefficients (``W.T``, as in scikit-learn's
        ``MultiTaskLasso``).
    intercept_ : ndarray (T,), or float after a 1-D ``y`` with a shared design
        Zero when ``fit_intercept=False``.
    tasks_ : ndarray (T,)
        Task labels in the order of ``coef_``'s rows (sorted in long format).
    certificate_ : Certificate
        The certificate of the solve (``certificate_.relative_gap``).
    solution_ : Solution
        The full :class:`~mtlcvx.Solution` (``solution_.to_frame()`` is labelled with
        the feature names and tasks).
    n_features_in_ : int
        Number of features d (the task column excluded in long format).
    feature_names_in_ : ndarray (d,)
        Feature names, when ``X`` was a DataFrame with string column names (the task
        column excluded in long format).

    Notes
    -----
    ``get_params(deep=True)`` exposes each penalty as ``penalties__<i>`` and its
    parameters as ``penalties__<i>__<param>``; :meth:`set_params` takes the same keys,
    so a grid can search them::

        GridSearchCV(MultiTaskRegressor(penalties=[mc.L21(alpha=0.1)]),
                     {"penalties__0__alpha": [0.01, 0.1, 1.0]})

    Examples
    --------
    >>> import numpy as np, mtlcvx as mc
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 4))
    >>> Y = X @ rng.normal(size=(4, 3)) + 0.1 * rng.normal(size=(50, 3))
    >>> est = mc.MultiTaskRegressor(penalties=[mc.L21(alpha=0.01)]).fit(X, Y)
    >>> est.coef_.shape, est.solution_.status
    ((3, 4), 'optimal')
    """

    def __init__(
        self,
        penalties: Sequence[Penalty] | None = None,
        backend: str | None = None,
        tol: float = 1e-8,
        fit_intercept: bool = True,
        task_col: Hashable | None = None,
        scale: str = "mean",
    ):
        self.penalties = penalties
        self.backend = backend
        self.tol = tol
        self.fit_intercept = fit_intercept
        self.task_col = task_col
        self.scale = scale

    # ------------------------------------------------------------------ parameters
    def _penalty_list(self) -> list[Any]:
        """``penalties`` as a list (empty for None or a value ``fit`` will refuse)."""
        if isinstance(self.penalties, Penalty):
            return [self.penalties]
        if isinstance(self.penalties, (list, tuple)):
            return list(self.penalties)
        return []

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters; with ``deep``, also ``penalties__<i>[__<param>]``.

        Parameters
        ----------
        deep : bool, default True
            Include each penalty (``penalties__<i>``) and its parameters
            (``penalties__<i>__<param>``).

        Returns
        -------
        dict
        """
        params = super().get_params(deep=deep)
        if deep:
            for i, pen in enumerate(self._penalty_list()):
                params[f"{_PENALTIES}__{i}"] = pen
                if hasattr(pen, "get_params"):
                    for key, value in pen.get_params(deep=False).items():
                        params[f"{_PENALTIES}__{i}__{key}"] = value
        return params

    def set_params(self, **params: Any) -> MultiTaskRegressor:
        """Set parameters, including ``penalties__<i>`` and ``penalties__<i>__<param>``.

        The penalties are cloned before a nested key changes them, so the objects the
        caller passed in are never mutated.

        Parameters
        ----------
        **params
            Constructor parameters and nested penalty keys.

        Returns
        -------
        self
        """
        nested = {k: params.pop(k) for k in list(params) if k.startswith(f"{_PENALTIES}__")}
        super().set_params(**params)
        if not nested:
            return self
        pens = [clone(p, safe=False) for p in self._penalty_list()]
        for key in sorted(nested, key=lambda k: k.count("__")):  # whole penalties first
            _, index, *rest = key.split("__", 2)
            if not index.isdigit() or int(index) >= len(pens):
                valid = (f"valid keys penalties__0 … penalties__{len(pens) - 1}, each with "
                         "__<param>" if pens else "penalties=None means the default")
                raise ArgumentError(f"invalid parameter {key!r}: the estimator has {len(pens)} "
                                 f"penalties ({valid}); set penalties=[...] first")
            if rest:
                pens[int(index)].set_params(**{rest[0]: nested[key]})
            else:
                pens[int(index)] = clone(nested[key], safe=False)
        self.penalties = pens
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        if self.task_col is not None:
            tags.input_tags.string = True
        return tags

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any) -> MultiTaskRegressor:
        """Solve the problem on ``(X, y)``.

        Parameters
        ----------
        X : array_like or DataFrame (n, d), or (n, d + 1) with the task column
        y : array_like (n, T) for a shared design (or (n,): one task), (n,) in long format

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Invalid input: scikit-learn's validation of ``X`` and ``y``, or an
            :class:`~mtlcvx.MTLError` that is also a ValueError (``DataError`` for bad
            labels or a missing task column, ``ArgumentError`` or ``PenaltyError`` for bad
            parameters, ``IncompatibleBackend``).
        """
        if self.penalties is None:
            penalties = _default_penalties()
        elif isinstance(self.penalties, (Penalty, list, tuple)):
            penalties = [clone(p, safe=False) for p in self._penalty_list()]
        else:
            raise ArgumentError(f"penalties must be a list of mc.Penalty objects or None, "
                             f"got {self.penalties!r}")
        loss = SquaredLoss(scale=self.scale)
        if not isinstance(self.fit_intercept, (bool, np.bool_)):
            raise ArgumentError(f"fit_intercept must be True or False, got {self.fit_intercept!r}")
        single = False
        if self.task_col is None:
            tasks = list(y.columns) if hasattr(y, "columns") else None
            # NaN/inf checked once, by MultiTaskData (a DataError, also a ValueError)
            X, Y = validate_data(self, X, y, multi_output=True, y_numeric=True,
                                 ensure_all_finite=False)
            single = Y.ndim == 1
            # not copied: the data lives only for this fit (the solution and certificate
            # keep none of it), and nothing edits X or Y meanwhile
            data = MultiTaskData.shared(X, Y[:, None] if single else Y, tasks=tasks,
                                        feature_names=getattr(self, "feature_names_in_", None),
                                        copy=False)
        else:
            features, task = self._split(X)
            features, y = validate_data(self, features, y, y_numeric=True,
                                        ensure_all_finite=False)
            data = MultiTaskData.from_stacked(
                features, y, task, feature_names=getattr(self, "feature_names_in_", None))
        sol = Problem(data, loss, penalties, fit_intercept=bool(self.fit_intercept)).solve(
            backend=self.backend, tol=self.tol)
        intercept = np.zeros(data.n_tasks) if sol.intercept is None else sol.intercept
        self.coef_ = sol.W[:, 0].copy() if single else sol.W.T.copy()
        self.intercept_ = float(intercept[0]) if single else intercept.copy()
        self.tasks_ = np.asarray(data.tasks)
        self.certificate_ = sol.certificate
        self.solution_ = sol
        return self

    def _split(self, X: Any) -> tuple[Any, np.ndarray]:
        """Long format: (the feature columns, the task label of every row)."""
        col = self.task_col
        if hasattr(X, "columns"):
            if col not in X.columns:
                raise DataError(f"task_col={col!r} is not a column of X; its columns are "
                                 f"{', '.join(map(repr, X.columns))}")
            return X.drop(columns=[col]), X[col].to_numpy()
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise DataError(f"X must be 2-D with the task label in column task_col={col!r}, "
                             f"got shape {arr.shape}")
        if isinstance(col, (bool, np.bool_)) or not isinstance(col, (int, np.integer)):
            raise DataError(f"task_col={col!r} must be a column index when X is an array "
                             "(a column name needs a DataFrame)")
        if not -arr.shape[1] <= col < arr.shape[1]:
            raise DataError(f"task_col={col} is out of range for X with {arr.shape[1]} columns")
        return np.delete(arr, col, axis=1), arr[:, col]

    # ------------------------------------------------------------------ predict
    def predict(self, X: Any) -> np.ndarray:
        """Predictions ``X_t w_t + b_t``.

        Parameters
        ----------
        X : array_like or DataFrame, laid out as in :meth:`fit`

        Returns
        -------
        ndarray (n, T) for a shared design ((n,) after a 1-D ``y``), (n,) in long format

        Raises
        ------
        DataError
            (a ValueError) Long format: a task label not seen in ``fit``, named in the
            message.
        """
        check_is_fitted(self)
        if self.task_col is None:
            X = validate_data(self, X, reset=False)
            return X @ self.coef_.T + self.intercept_
        features, task = self._split(X)
        features = validate_data(self, features, reset=False)
        rows = self._task_rows(task)
        return np.einsum("nd,nd->n", features, self.coef_[rows]) + self.intercept_[rows]

    def _task_rows(self, task: np.ndarray) -> np.ndarray:
        """Position in ``tasks_`` of every row's label."""
        if task.dtype == object:
            distinct = list(dict.fromkeys(task.tolist()))
            check_labels(distinct, "task", len(distinct), "tasks")
        labels, inverse = np.unique(task, return_inverse=True)
        known = {label: i for i, label in enumerate(self.tasks_.tolist())}
        unseen = [label for label in labels.tolist() if label not in known]
        if unseen:
            raise DataError(
                f"task {unseen[0]!r} in column task_col={self.task_col!r} was not seen in fit "
                f"(known tasks: {', '.join(map(repr, known))}); keep every task in the "
                "training folds, e.g. StratifiedKFold on the task column"
            )
        return np.array([known[label] for label in labels.tolist()], dtype=np.intp)[inverse]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R²: averaged uniformly over tasks (shared design) or pooled (long format).

        Shared design: the R² of each task (column of ``y``), averaged with equal
        weights. Long format: ``1 − Σ (y − ŷ)² / Σ (y − ȳ)²`` over every row, ``ȳ`` the
        mean of all rows. Both are scikit-learn's ``r2_score(y, self.predict(X))``.

        Parameters
        ----------
        X : array_like or DataFrame, laid out as in :meth:`fit`
        y : array_like, as in :meth:`fit`
        sample_weight : array_like (n,), optional

        Returns
        -------
        float
        """
        return super().score(X, y, sample_weight=sample_weight)
