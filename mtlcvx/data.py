"""Validated multi-task data: per-task designs ``X_t`` (n_t, d) and targets ``y_t`` (n_t,).

A :class:`MultiTaskData` keeps the original arrays (objectives and certificates are
computed on them) and, on demand, a compressed copy that every backend solves on:
tasks with more rows than features are replaced by a thin QR factor, which keeps the
least-squares objective exact up to a stored constant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ._threads import blas_limited
from .exceptions import DataError

#: Rows × features above which a Python loop over tasks (one BLAS call each, ~2 µs)
#: costs less than gathering every row's coefficients (an (N, d) temporary).
_LOOP_COST = 400

#: Entries of the reused buffer a shared design is centred into, a block of rows at a time
#: (cache-sized).
_BLOCK_ENTRIES = 1 << 15

__all__ = ["MultiTaskData", "CompressedTasks", "SharedGram", "TaskGrams", "FrozenArray",
           "frozen_copy"]


class FrozenArray(np.ndarray):
    """A read-only ndarray: in-place edits raise, and copying one returns it unchanged.

    Data and penalty matrices are held as frozen copies, so a caller's later in-place
    edit (``K *= 10``) cannot change a problem behind its back, and ``copy.deepcopy``
    (scikit-learn's ``clone``) shares the immutable array instead of making a writable
    twin. A writable array derived from one (``K * 2``) copies normally.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> np.ndarray:
        return self if not self.flags.writeable else np.array(self, copy=True)

    def __copy__(self) -> np.ndarray:
        return self if not self.flags.writeable else np.array(self, copy=True)

    def __array_wrap__(self, arr: np.ndarray, context: Any = None,
                       return_scalar: bool = False) -> Any:
        # results of arithmetic are ordinary (writable) arrays or scalars
        out = arr.view(np.ndarray)
        return out[()] if return_scalar else out


def frozen_copy(arr: np.ndarray, copy: bool = True) -> FrozenArray:
    """A read-only :class:`FrozenArray` copy of ``arr``: ``arr`` itself if already frozen,
    a read-only view of it if it is a float64 C array that nothing can write to (every
    array in its chain of bases read-only, the last one owning its memory) or when
    ``copy=False`` (the caller keeps it unchanged while the copy is in use)."""
    if isinstance(arr, FrozenArray) and not arr.flags.writeable:
        return arr
    if arr.dtype == np.float64 and arr.flags.c_contiguous and (not copy or _immutable(arr)):
        return _freeze(arr)
    return _freeze(np.array(arr, dtype=np.float64, copy=True, order="C"))


def _immutable(arr: np.ndarray) -> bool:
    """True when no array can write to ``arr``'s memory: it and each of its bases are
    read-only and the last base owns the memory (not a buffer another object may edit)."""
    while isinstance(arr, np.ndarray):
        if arr.flags.writeable:
            return False
        if arr.base is None:
            return True
        arr = arr.base
    return False


def _freeze(arr: np.ndarray) -> FrozenArray:
    """A read-only :class:`FrozenArray` view of ``arr`` (a float64 array; ``arr`` itself keeps
    its flags)."""
    out = arr.view(FrozenArray)
    out.setflags(write=False)
    return out


def _is_frozen(a: Any) -> bool:
    """True for a read-only :class:`FrozenArray` (built by this module: already checked)."""
    return isinstance(a, FrozenArray) and not a.flags.writeable


def _is_frozen_vector(y: Any) -> bool:
    """True for a 1-D float64 read-only :class:`FrozenArray` (already checked, kept as is)."""
    return _is_frozen(y) and y.ndim == 1 and y.dtype == np.float64


#: dtype kinds converted to float64: bool, signed/unsigned integers, floats, timedeltas
_REAL_KINDS = frozenset("biufm")


def as_float_array(value: Any, name: str, ndim: int | tuple[int, ...],
                   finite: bool = True) -> np.ndarray:
    """Convert ``value`` to a finite float64 array with the given number of dimensions.

    Integer and uint8 inputs are converted before any product is formed (School ships
    as uint8, whose ``XᵀX`` would overflow). ``finite=False`` leaves the NaN/inf check to
    the caller (:class:`MultiTaskData` checks all tasks at once).

    Raises
    ------
    DataError
        If the value is not numeric, has the wrong number of dimensions, or holds NaN/inf.
    """
    if type(value) is np.ndarray:  # subclasses (np.matrix) become plain arrays below
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except Exception as err:  # ragged nested lists and the like
            raise DataError(f"{name} could not be converted to a numeric array: {err}") from err
    kind = arr.dtype.kind
    if kind not in _REAL_KINDS:
        if kind == "c":
            raise DataError(f"{name} must be real, got a complex array")
        raise DataError(
            f"{name} must be numeric, got dtype {arr.dtype}; convert it with "
            f"np.asarray({name}, dtype=float) or encode categorical columns first"
        )
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in allowed:
        hint = (f"; a single column is {name}.reshape(-1, 1)"
                if arr.ndim == 1 and 2 in allowed else "")
        raise DataError(
            f"{name} must have {' or '.join(map(str, allowed))} dimension(s), "
            f"got shape {arr.shape}{hint}"
        )
    arr = arr.astype(np.float64, copy=False)
    if finite and kind == "f":  # converted integers and booleans are finite
        _check_finite(arr, name)
    return arr


def column_means(A: np.ndarray) -> np.ndarray:
    """Column means of ``A`` (n, k) as one matrix-vector product: a NumPy reduction down
    the rows of a narrow array costs 3-6 times more."""
    return np.full(A.shape[0], 1.0 / A.shape[0]) @ A.view(np.ndarray)


def _check_finite(arr: np.ndarray, name: str) -> None:
    """Raise a DataError naming ``name`` when ``arr`` holds NaN or inf."""
    if not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise DataError(
            f"{name} contains {bad} NaN or infinite value(s); drop or impute them first"
        )


def check_labels(values: Any, name: str, count: int, unit: str) -> list[Any]:
    """Validate labels (task labels, feature names): ``count`` unique values of one type.

    ``unit`` names what is labelled ("tasks", "features") in the count error.

    NumPy scalars become Python scalars (``np.int64(3)`` -> ``3``). Labels mixing types
    (``[1, "a"]``) are refused rather than converted to strings, which would make
    ``1`` and ``"1"`` collide or sort differently from what the caller sees.

    Raises
    ------
    DataError
        For a wrong count, mixed types, or duplicates.
    """
    labels = [v.item() if isinstance(v, np.generic) else v for v in values]
    missing = sum(v is None or (isinstance(v, float) and v != v) for v in labels)
    if missing:
        raise DataError(f"{name} has {missing} missing (None or NaN) label(s); give every "
                        "one a value first")
    if len(labels) != count:
        raise DataError(f"{name} has {len(labels)} labels for {count} {unit}; give one each")
    kinds = sorted({type(v).__name__ for v in labels})
    if len(kinds) > 1:
        raise DataError(
            f"{name} mixes label types ({', '.join(kinds)}); convert them to one type first "
            "(e.g. df[col].astype(str))"
        )
    if len(set(labels)) != len(labels):
        dupes = sorted({repr(v) for v in labels if labels.count(v) > 1})
        raise DataError(f"{name} has duplicate labels: {', '.join(dupes)}")
    return labels


def _check_tasks_finite(blocks: tuple[np.ndarray, np.ndarray] | None,
                        Xs: list[np.ndarray], ys: list[np.ndarray],
                        fresh: tuple[list[int], list[int]]) -> None:
    """Raise a DataError naming the first task whose X or y holds NaN/inf.

    ``fresh = (x_tasks, y_tasks)``: the tasks whose X (first of each distinct array) and
    y were not checked before (read-only :class:`FrozenArray` inputs were). One pass over
    ``blocks`` (every task's X and y stacked) when given, then per array only to name
    the culprit; else one pass per fresh array.
    """
    if blocks is not None and np.isfinite(blocks[0]).all() and np.isfinite(blocks[1]).all():
        return
    x_tasks, y_tasks = set(fresh[0]), set(fresh[1])
    for t in sorted(x_tasks | y_tasks):
        if t in x_tasks:
            _check_finite(Xs[t], f"X[{t}]")
        if t in y_tasks:
            _check_finite(ys[t], f"y[{t}]")


def _target_vector(y: Any, name: str, finite: bool = True) -> np.ndarray:
    arr = as_float_array(y, name, (1, 2), finite)
    if arr.ndim == 2:
        if arr.shape[1] != 1:
            raise DataError(
                f"{name} must have shape (n_t,) or (n_t, 1), got {arr.shape}; "
                "for several targets sharing one design use MultiTaskData.shared(X, Y)"
            )
        arr = arr[:, 0]
    return arr


@dataclass(frozen=True)
class CompressedTasks:
    """Reduced least-squares data that every backend solves on.

    For each task ``‖X̃_t w − ỹ_t‖² = ‖A_t w − z_t‖² + offset_t`` exactly, where
    ``X̃_t, ỹ_t`` are the (optionally task-centred) original arrays.

    Attributes
    ----------
    A : list of ndarray, each (m_t, d)
        Reduced designs, ``m_t = min(n_t, d)`` rows.
    z : list of ndarray, each (m_t,)
        Reduced targets.
    offset : ndarray (T,)
        Constants ``‖ỹ_t‖² − ‖z_t‖²`` dropped by the compression.
    x_mean : ndarray (d, T) or None
        Per-task feature means removed when intercepts are profiled out.
    y_mean : ndarray (T,) or None
        Per-task target means removed when intercepts are profiled out.
    shared : bool
        True when every ``A_t`` is the same array (shared design).
    """

    A: list[np.ndarray]
    z: list[np.ndarray]
    offset: np.ndarray
    x_mean: np.ndarray | None
    y_mean: np.ndarray | None
    shared: bool

    @cached_property
    def padded(self) -> tuple[np.ndarray, np.ndarray]:
        """``A`` padded with zero rows to (T, m, d) and ``z`` to (T, m), ``m = max_t m_t``."""
        m = max(A.shape[0] for A in self.A)
        T, d = len(self.A), self.A[0].shape[1]
        Apad = np.zeros((T, m, d))
        Zpad = np.zeros((T, m))
        for t, (A, z) in enumerate(zip(self.A, self.z, strict=True)):
            Apad[t, : A.shape[0]] = A
            Zpad[t, : z.shape[0]] = z
        return Apad, Zpad


#: Flops of ``G W`` above which :meth:`MultiTaskData.gram_product` looks for zero rows
#: of ``W`` to skip (below it the search costs about what it saves).
_SPARSE_PRODUCT = 1e6


@dataclass(frozen=True)
class SharedGram:
    """Sufficient statistics of a shared design (n > d), see :meth:`MultiTaskData.gram`.

    Attributes
    ----------
    G : ndarray (d, d)
        ``XᵀX``.
    B : ndarray (d, T)
        ``XᵀY``.
    yy : ndarray (T,)
        ``‖y_t‖²``.
    """

    G: np.ndarray
    B: np.ndarray
    yy: np.ndarray


class TaskGrams:
    """Per-task normal equations, see :meth:`MultiTaskData.task_grams` (read-only arrays:
    kept on the data and handed out, never edited).

    Attributes
    ----------
    H : ndarray (T, d, d)
        ``X_tᵀX_t``. Given the tasks' designs ``X`` (T, n, d) (tasks of one size) instead,
        computed when first read and kept; :meth:`write_products` writes them into a
        caller's array without keeping one (a kept (T, d, d) array is fresh memory: a
        page fault per 4 KB on a first call).
    B : ndarray (d, T)
        ``X_tᵀy_t``.
    yy : ndarray (T,)
        ``‖y_t‖²``.
    """

    def __init__(self, H: np.ndarray | None, B: np.ndarray, yy: np.ndarray,
                 X: np.ndarray | None = None):
        self._H, self._X, self._diagonals = H, X, None
        self.B, self.yy = B, yy
        for array in (H, B, yy):
            if array is not None:
                array.flags.writeable = False

    @property
    def H(self) -> np.ndarray:
        if self._H is None:
            self._H = self._products()
            self._H.flags.writeable = False
        return self._H

    @blas_limited
    def _products(self, out: np.ndarray | None = None) -> np.ndarray:
        return np.matmul(self._X.transpose(0, 2, 1), self._X, out=out)

    def write_products(self, out: np.ndarray) -> None:
        """``X_tᵀX_t`` into ``out`` (T, d, d) (any strides): the kept ``H`` copied, else
        the batched product written there directly (its diagonals kept)."""
        if self._H is None:
            self._products(out)
            self._diagonals = out.diagonal(0, 1, 2).copy()
        else:
            out[...] = self._H

    def diagonals(self) -> np.ndarray:
        """``‖x_tj‖²`` (T, d): ``H``'s diagonals (or those :meth:`write_products` kept),
        else summed from ``X``."""
        if self._H is not None:
            return np.diagonal(self._H, axis1=1, axis2=2)
        if self._diagonals is None:
            self._diagonals = np.einsum("tnd,tnd->td", self._X, self._X)
        return self._diagonals


def _compress(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin-QR compress ``X`` (n, d) against the targets ``Y`` (n, k) when n > d."""
    n, d = X.shape
    if n <= d:
        return X, Y, np.zeros(Y.shape[1])
    Q, R = np.linalg.qr(X, mode="reduced")
    Z = Q.T @ Y
    offset = np.maximum(np.einsum("ij,ij->j", Y, Y) - np.einsum("ij,ij->j", Z, Z), 0.0)
    return R, Z, offset


class MultiTaskData:
    """Per-task regression data.

    Parameters
    ----------
    X : sequence of array_like, each (n_t, d)
        One design per task. Sample counts ``n_t`` may differ; the feature count ``d``
        may not.
    y : sequence of array_like, each (n_t,) or (n_t, 1)
        One target vector per task.
    tasks : sequence, optional
        Task labels (default ``0 … T−1``), kept in ``data.tasks``; unique, one type.
    feature_names : sequence, optional
        One name per feature column, kept in ``data.feature_names``; unique, one type.

    Attributes
    ----------
    X : tuple of ndarray (n_t, d), float64
        Read-only copies of the inputs (in-place edits raise; make new data instead).
    y : tuple of ndarray (n_t,), float64
        Read-only copies.
    tasks : list
        Task labels: the columns of :meth:`Solution.to_frame <mtlcvx.Solution.to_frame>`.
    feature_names : list or None
        Feature names (its index), None when none were given.
    n_tasks, n_features : int
    n_samples : ndarray (T,) of int
    is_shared : bool
        True when every task has the same design (built by :meth:`shared`, or detected).

    Raises
    ------
    DataError
        For no task, mismatched lengths, X not 2-D, differing feature counts, NaN/inf,
        an empty task, non-numeric input, or labels of mixed types or with duplicates.

    Examples
    --------
    >>> import numpy as np, mtlcvx as mc
    >>> rng = np.random.default_rng(0)
    >>> data = mc.MultiTaskData([rng.normal(size=(5, 3)), rng.normal(size=(7, 3))],
    ...                         [rng.normal(size=5), rng.normal(size=7)])
    >>> data.n_tasks, data.n_features, data.n_samples.tolist()
    (2, 3, [5, 7])
    """

    def __init__(self, X: Sequence[Any], y: Sequence[Any], tasks: Sequence[Any] | None = None,
                 feature_names: Sequence[Any] | None = None):
        if isinstance(X, np.ndarray) or isinstance(y, np.ndarray):
            raise DataError(
                "X and y must be lists with one array per task; for stacked arrays with a "
                "task column use MultiTaskData.from_stacked(X, y, task), for a shared "
                "design with Y (n, T) use MultiTaskData.shared(X, Y)"
            )
        X, y = list(X), list(y)
        if len(X) == 0:
            raise DataError("X is empty: give at least one task")
        if len(X) != len(y):
            raise DataError(f"X has {len(X)} tasks but y has {len(y)}; give one y_t per X_t")
        labels = (list(range(len(X))) if tasks is None
                  else check_labels(tasks, "tasks", len(X), "tasks"))
        # checked (one per distinct input array: a shared design stays shared) ...
        checked: dict[int, np.ndarray] = {}
        fresh: tuple[list[int], list[int]] = ([], [])  # tasks whose X / y need a NaN check
        Xs = []
        for t, Xt in enumerate(X):
            if id(Xt) not in checked:
                if _is_frozen(Xt) and Xt.ndim == 2:  # checked already: kept, not copied
                    checked[id(Xt)] = Xt
                else:
                    checked[id(Xt)] = as_float_array(Xt, f"X[{t}]", 2, finite=False)
                    fresh[0].append(t)
            Xs.append(checked[id(Xt)])
        fresh[1].extend(t for t, yt in enumerate(y) if not _is_frozen_vector(yt))
        ys = list(y)
        for t in fresh[1]:
            ys[t] = _target_vector(y[t], f"y[{t}]", finite=False)
        d = Xs[0].shape[1]
        for t, (Xt, yt) in enumerate(zip(Xs, ys, strict=True)):
            if Xt.shape[0] == 0:
                raise DataError(f"task {labels[t]!r} (X[{t}]) has no samples; drop it")
            if Xt.shape[1] != d:
                raise DataError(
                    f"X[{t}] has {Xt.shape[1]} features but X[0] has {d}; every task "
                    "must use the same features (pad missing ones with zeros)"
                )
            if yt.shape[0] != Xt.shape[0]:
                raise DataError(
                    f"X[{t}] has {Xt.shape[0]} rows but y[{t}] has {yt.shape[0]}; they must match"
                )
        if d == 0:
            raise DataError("X has no features (d = 0)")
        # ... then read-only copies (arrays frozen already are kept): distinct tasks of one
        # size in one (T, n, d) block, which batched products over tasks use as it is
        # (other sizes: all rows in one (N, d) block, which per-task sums over the stacked
        # rows use as it is)
        frozen_in = any(_is_frozen(Xt) for Xt in Xs)
        if len(checked) == len(Xs) > 1 and len({Xt.shape for Xt in Xs}) == 1 and not frozen_in:
            blocks = (np.stack(Xs).astype(np.float64, copy=False),
                      np.stack(ys).astype(np.float64, copy=False))
            _check_tasks_finite(blocks, Xs, ys, fresh)
            blocks = (_freeze(blocks[0]), _freeze(blocks[1]))
            self.__dict__["_equal_blocks_cache"] = blocks
            Xs, ys = list(blocks[0]), list(blocks[1])
        elif len(checked) == len(Xs) > 1 and not frozen_in:
            ends = np.cumsum([Xt.shape[0] for Xt in Xs])
            rows = (np.empty((int(ends[-1]), d)), np.empty(int(ends[-1])))
            np.concatenate(Xs, out=rows[0])  # C order, whatever order the inputs have
            np.concatenate(ys, out=rows[1])
            _check_tasks_finite(rows, Xs, ys, fresh)
            rows = (_freeze(rows[0]), _freeze(rows[1]))
            self.__dict__["_stacked_block"] = rows
            Xs, ys = np.split(rows[0], ends[:-1]), np.split(rows[1], ends[:-1])
        else:
            _check_tasks_finite(None, Xs, ys, fresh)
            frozen: dict[int, np.ndarray] = {}
            for Xt in Xs:  # once per distinct array: a shared design is copied once
                if id(Xt) not in frozen:
                    frozen[id(Xt)] = frozen_copy(Xt)
            Xs = [frozen[id(Xt)] for Xt in Xs]
            ys = [frozen_copy(yt) for yt in ys]
        self.X = tuple(Xs)
        self.y = tuple(ys)
        self.tasks = labels
        self.feature_names = (None if feature_names is None
                              else check_labels(feature_names, "feature_names", d, "features"))
        self.n_tasks = len(Xs)
        self.n_features = d
        self.n_samples = np.array([Xt.shape[0] for Xt in Xs])
        first = Xs[0]
        self.is_shared = all(Xt is first for Xt in Xs) or all(
            Xt.shape == first.shape and np.array_equal(Xt, first) for Xt in Xs
        )
        self._compressed: dict[Any, Any] = {}  # center -> CompressedTasks, ("gram", center)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_stacked(cls, X: Any, y: Any, task: Any,
                     feature_names: Sequence[Any] | None = None) -> MultiTaskData:
        """Build from stacked rows and one task label per row.

        Parameters
        ----------
        X : array_like (n, d)
        y : array_like (n,)
        task : array_like (n,)
            Task label of every row; tasks are ordered by sorted unique label, and labels
            mixing types are refused.
        feature_names : sequence of length d, optional
            Kept in ``data.feature_names``.
        """
        name = getattr(task, "name", None)
        columns = getattr(X, "columns", None)
        if columns is not None and (
                (name is not None and name in columns)
                or (isinstance(task, (str, int)) and task in columns)):
            col = name if name is not None and name in columns else task
            raise DataError(
                f"X still holds the task column {col!r}, which would become a feature; pass "
                f"X.drop(columns=[{col!r}]), or use MultiTaskData.from_frame(df, task={col!r}, "
                "target=...)"
            )
        X = as_float_array(X, "X", 2)
        y = _target_vector(y, "y")
        if not isinstance(task, np.ndarray) and not hasattr(task, "dtype"):
            task = np.asarray(list(task), dtype=object)  # keep each label's own type
        task = np.asarray(task)
        if task.ndim != 1 or task.shape[0] != X.shape[0] or y.shape[0] != X.shape[0]:
            raise DataError(
                f"X has {X.shape[0]} rows, y has {y.shape[0]} and task has "
                f"{task.shape[0] if task.ndim == 1 else task.shape}; give one label per row"
            )
        if task.dtype == object:  # np.unique cannot sort mixed types: name them instead
            distinct = list(dict.fromkeys(task.tolist()))
            check_labels(distinct, "task", len(distinct), "tasks")
            task = np.asarray(task.tolist())  # one type now: a typed array sorts as expected
        if task.dtype.kind == "f" and np.isnan(task).any():
            raise DataError(f"task has {int(np.isnan(task).sum())} NaN label(s); drop those "
                            "rows or give them a task first")
        labels, inverse = np.unique(task, return_inverse=True)
        rows = [np.flatnonzero(inverse == k) for k in range(len(labels))]
        return cls([X[r] for r in rows], [y[r] for r in rows], tasks=labels.tolist(),
                   feature_names=feature_names)

    @classmethod
    def from_frame(cls, df: Any, task: Any, target: Any,
                   features: Sequence[Any] | None = None) -> MultiTaskData:
        """Build from a pandas DataFrame in long format: one row per sample.

        Parameters
        ----------
        df : pandas.DataFrame
        task : column label
            The column holding each row's task label; tasks are ordered by sorted unique
            label and kept in ``data.tasks``. Labels mixing types are refused.
        target : column label
            The column holding the target.
        features : sequence of column labels, optional
            The feature columns, in order (default: every other column). Their labels
            are kept in ``data.feature_names``.

        Returns
        -------
        MultiTaskData

        Raises
        ------
        DataError
            For a missing column, a non-numeric feature, NaN/inf, or mixed-type labels.

        Examples
        --------
        >>> import pandas as pd, mtlcvx as mc
        >>> df = pd.DataFrame({"school": ["b", "a", "b", "a"], "hours": [1., 2., 3., 4.],
        ...                    "score": [10., 20., 25., 41.]})
        >>> data = mc.MultiTaskData.from_frame(df, task="school", target="score")
        >>> data.tasks, data.feature_names, data.n_samples.tolist()
        (['a', 'b'], ['hours'], [2, 2])
        """
        columns = list(getattr(df, "columns", ()))
        if not hasattr(df, "loc") or not columns:
            raise DataError(f"df must be a pandas DataFrame, got {type(df).__name__}; for "
                            "arrays use MultiTaskData.from_stacked(X, y, task)")
        check_labels(columns, "df.columns", len(columns), "columns")
        if features is None:
            features = [c for c in columns if c != task and c != target]
        features = list(features)
        missing = [c for c in [task, target, *features] if c not in columns]
        if missing:
            raise DataError(f"df has no column {missing[0]!r}; its columns are "
                            f"{', '.join(map(repr, columns))}")
        return cls.from_stacked(as_float_array(df[features].to_numpy(), "df[features]", 2),
                                df[target].to_numpy(), df[task].to_numpy(),
                                feature_names=features)

    @classmethod
    def shared(cls, X: Any, Y: Any, tasks: Sequence[Any] | None = None,
               feature_names: Sequence[Any] | None = None, *,
               copy: bool = True) -> MultiTaskData:
        """Build a shared-design problem: every task uses ``X`` (n, d); ``Y`` is (n, T).

        ``tasks`` (T labels) and ``feature_names`` (d names) are kept on the data.

        ``X`` and ``Y`` are checked once (NaN/inf, shapes) and held read-only: as copies,
        except float64 C arrays that are read-only all the way down (views of them are
        held) and, with ``copy=False``, any float64 C array (scikit-learn's ``copy_X``:
        no time or memory spent copying, but the caller must not edit ``X`` or ``Y`` in
        place while the data or a problem built on it is in use: the read-only views
        share their memory). The caller's own arrays keep their flags.
        """
        X = as_float_array(X, "X", 2)
        Y = as_float_array(Y, "Y", 2)
        if Y.shape[0] != X.shape[0]:
            raise DataError(f"X has {X.shape[0]} rows but Y has {Y.shape[0]}; they must match")
        # columns passed as frozen views: checked here only
        X, Y = frozen_copy(X, copy), frozen_copy(Y, copy)
        data = cls([X] * Y.shape[1], [Y[:, t] for t in range(Y.shape[1])], tasks=tasks,
                   feature_names=feature_names)
        data.__dict__["_shared_targets"] = Y
        return data

    # ------------------------------------------------------------------ views
    def compressed(self, center: bool) -> CompressedTasks:
        """Reduced data for the backends, computed once per ``center`` flag.

        Parameters
        ----------
        center : bool
            Centre ``X_t`` and ``y_t`` within each task first, which profiles out an
            unpenalised per-task intercept exactly.
        """
        if center not in self._compressed:
            self._compressed[center] = self._build_compressed(center)
        return self._compressed[center]

    def gram(self, center: bool) -> SharedGram | None:
        """``XᵀX``, ``XᵀY`` and ``‖y_t‖²`` of a shared design, computed once (None otherwise).

        With ``center`` the design and targets are centred first (intercepts profiled
        out). Exact: ``‖X w_t − y_t‖² = w_tᵀGw_t − 2 w_tᵀb_t + ‖y_t‖²``.
        """
        if not self.is_shared:
            return None
        key = ("gram", center)
        if key not in self._compressed:
            self._compressed[key] = self._build_gram(center)
        return self._compressed[key]

    def gram_product(self, W: np.ndarray, center: bool, keep: bool = True) -> np.ndarray:
        """``G W`` (d, T) with ``G`` of :meth:`gram` (a shared design), kept for the last
        ``W`` (compared exactly) as :meth:`shared_residuals` keeps ``X W − Y``: a solver's last
        check and the certificate at the same point share one product. ``keep=False``
        neither reads nor writes that cache (a point no certificate will see).

        A large product takes only the non-zero rows of ``W`` (``G[:, S] W_S``): the same
        sums without their zero terms, so the certificate's rounding bound covers it. A
        kept product is returned read-only.
        """
        kept = self.kept_gram_product(W, center) if keep else None
        if kept is None:
            G = self.gram(center).G
            rows = np.flatnonzero(W.any(axis=1)) if W.size * G.shape[0] > _SPARSE_PRODUCT \
                else None
            GW = G @ W if rows is None or 2 * rows.size > W.shape[0] else G[:, rows] @ W[rows]
            if not keep:
                return GW
            GW.flags.writeable = False  # shared with later callers: never edited in place
            self.__dict__["_gram_product"] = (center, W.copy(), GW)
            return GW
        return kept

    def kept_gram_product(self, W: np.ndarray, center: bool) -> np.ndarray | None:
        """The product :meth:`gram_product` kept, when it was for this ``W`` (compared
        exactly) and ``center``; else None (nothing is computed)."""
        cache = self.__dict__.get("_gram_product")
        if (cache is None or cache[0] != center or cache[1].shape != W.shape
                or not np.array_equal(cache[1], W)):
            return None
        return cache[2]

    def task_grams(self, center: bool) -> TaskGrams:
        """Per-task ``X_tᵀX_t`` (T, d, d), ``X_tᵀy_t`` (d, T) and ``‖y_t‖²`` (T,), computed once.

        The normal equations of every task without a QR: what the direct backend and the
        first-order oracles need for per-task designs. With ``center`` each task is
        centred first (intercepts profiled out).
        """
        key = ("task_grams", center)
        if key not in self._compressed:
            self._compressed[key] = self._build_task_grams(center)
        return self._compressed[key]

    def _gram_diagonals(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(‖x_tj‖², ‖y_t‖²)`` read off the uncentred statistics of :meth:`gram` (a shared
        design: (1, d)) or :meth:`task_grams` ((T, d)), and (T,), when they have been
        computed already; None otherwise (never computes them). Each is a plain sum of
        squares of the data (any order): certificates bound ``‖X_t‖_F`` from them."""
        stats = self._compressed.get(("gram", False) if self.is_shared else ("task_grams", False))
        if stats is None:
            return None
        if self.is_shared:
            return stats.G.diagonal()[None], stats.yy
        return stats.diagonals(), stats.yy

    @blas_limited
    def _build_task_grams(self, center: bool) -> TaskGrams:
        blocks = self.equal_blocks()
        if blocks is not None:  # equal task sizes: batched products (plain views: a
            # FrozenArray operand costs a Python-level __array_wrap__ per product)
            X, y = blocks[0].view(np.ndarray), blocks[1].view(np.ndarray)
            if center:  # (the centred copies are not kept: their X_tᵀX_t is made now)
                X, y = X - X.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
            Xt = X.transpose(0, 2, 1)
            return TaskGrams(np.matmul(Xt, X) if center else None,
                             np.matmul(Xt, y[:, :, None])[:, :, 0].T,
                             np.einsum("tn,tn->t", y, y), None if center else X)
        d = self.n_features
        T = self.n_tasks
        H, B, yy = np.empty((T, d, d)), np.empty((T, d)), np.empty(T)
        for t, (Xt, yt) in enumerate(zip(self.X, self.y, strict=True)):
            Xt, yt = Xt.view(np.ndarray), yt.view(np.ndarray)  # plain views: no wrap per call
            if center:
                Xt, yt = Xt - Xt.mean(axis=0), yt - yt.mean()
            np.dot(Xt.T, Xt, out=H[t])
            np.dot(Xt.T, yt, out=B[t])
            yy[t] = yt @ yt
        return TaskGrams(H, B.T, yy)

    @blas_limited
    def _build_gram(self, center: bool) -> SharedGram:
        X, Y = self.X[0].view(np.ndarray), self.shared_targets().view(np.ndarray)
        if not center:
            return SharedGram(X.T @ X, X.T @ Y, np.einsum("nt,nt->t", Y, Y))
        # centred a block of rows at a time into one reused buffer: the same entries as
        # centring whole, without an (n, d) temporary (a fresh one costs a page fault
        # per 4 KB, as much as the products at n = 4000, d = 60)
        (n, d), T = X.shape, Y.shape[1]
        x_mean, y_mean = self.shared_means()
        rows = max(1, _BLOCK_ENTRIES // (d + T))
        xbuf, ybuf = np.empty((min(rows, n), d)), np.empty((min(rows, n), T))
        G, B, yy = np.zeros((d, d)), np.zeros((d, T)), np.zeros(T)
        for start in range(0, n, rows):
            m = min(rows, n - start)
            Xc = np.subtract(X[start:start + m], x_mean, out=xbuf[:m])
            Yc = np.subtract(Y[start:start + m], y_mean, out=ybuf[:m])
            G += Xc.T @ Xc
            B += Xc.T @ Yc
            yy += np.einsum("nt,nt->t", Yc, Yc)
        return SharedGram(G, B, yy)

    @blas_limited
    def _build_compressed(self, center: bool) -> CompressedTasks:
        T = self.n_tasks
        x_mean = np.stack([Xt.mean(axis=0) for Xt in self.X], axis=1) if center else None
        y_mean = np.array([yt.mean() for yt in self.y]) if center else None
        if self.is_shared:
            X = self.X[0] - x_mean[:, 0] if center else self.X[0]
            Y = np.stack(self.y, axis=1)
            if center:
                Y = Y - y_mean
            A, Z, offset = _compress(X, Y)
            return CompressedTasks([A] * T, [Z[:, t] for t in range(T)], offset,
                                   x_mean, y_mean, True)
        As, zs, offs = [], [], []
        for t in range(T):
            Xt, yt = self.X[t], self.y[t]
            if center:
                Xt, yt = Xt - x_mean[:, t], yt - y_mean[t]
            A, z, off = _compress(Xt, yt[:, None])
            As.append(A)
            zs.append(z[:, 0])
            offs.append(off[0])
        return CompressedTasks(As, zs, np.array(offs), x_mean, y_mean, False)

    def stacked(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All rows stacked: ``X`` (N, d), ``y`` (N,) and the task index of each row (N,)."""
        cache = self.__dict__.get("_stacked_rows")
        if cache is None:
            blocks = self.__dict__.get("_stacked_block")
            if blocks is not None:  # held stacked since construction
                X, y = blocks
            elif (blocks := self.equal_blocks()) is not None:  # a view of the (T, n, d) block
                X, y = blocks[0].reshape(-1, self.n_features), blocks[1].ravel()
            else:
                X, y = np.vstack(self.X), np.concatenate(self.y)
            cache = (X, y, self._task_index())
            self.__dict__["_stacked_rows"] = cache
        return cache

    def task_starts(self) -> np.ndarray:
        """The first stacked row of every task (T,): tasks are contiguous and non-empty."""
        cache = self.__dict__.get("_task_starts")
        if cache is None:
            cache = np.concatenate(([0], np.cumsum(self.n_samples)[:-1]))
            self.__dict__["_task_starts"] = cache
        return cache

    def _task_index(self) -> np.ndarray:
        """The task of every stacked row (N,), computed once without stacking ``X``."""
        cache = self.__dict__.get("_task_rows")
        if cache is None:
            cache = np.repeat(np.arange(self.n_tasks), self.n_samples)
            self.__dict__["_task_rows"] = cache
        return cache

    def equal_blocks(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``X`` (T, n, d) and ``y`` (T, n) when every task has n rows (None otherwise).

        Computed once; batched products over tasks use it instead of a Python loop.
        """
        if "_equal_blocks_cache" not in self.__dict__:
            blocks = None
            if len({x.shape[0] for x in self.X}) == 1:
                X3 = np.empty((self.n_tasks, *self.X[0].shape))
                Y2 = np.empty((self.n_tasks, self.y[0].shape[0]))
                for t, (Xt, yt) in enumerate(zip(self.X, self.y, strict=True)):
                    X3[t], Y2[t] = Xt, yt
                blocks = (X3, Y2)
            self.__dict__["_equal_blocks_cache"] = blocks
        return self.__dict__["_equal_blocks_cache"]

    def shared_targets(self) -> np.ndarray:
        """``Y`` (n, T) of a shared design (the targets side by side), computed once."""
        cache = self.__dict__.get("_shared_targets")
        if cache is None:
            cache = np.stack(self.y, axis=1)
            self.__dict__["_shared_targets"] = cache
        return cache

    def shared_means(self) -> tuple[np.ndarray, np.ndarray]:
        """Column means ``x̄`` (d,) of ``X`` and ``ȳ`` (T,) of ``Y`` of a shared design,
        computed once."""
        cache = self.__dict__.get("_shared_means")
        if cache is None:
            cache = (column_means(self.X[0]), column_means(self.shared_targets()))
            self.__dict__["_shared_means"] = cache
        return cache

    def shared_residuals(self, W: np.ndarray) -> np.ndarray:
        """``X W − Y`` (n, T) of a shared design: the design is used once, not stacked.

        Kept for the last ``W`` (compared exactly) and returned read-only, so the
        intercepts, the objective and the certificate at one point share one product
        and one subtraction.
        """
        cache = self.__dict__.get("_shared_residual")
        if cache is None or cache[0].shape != W.shape or not (cache[0] == W).all():
            R = self.X[0] @ W
            R -= self.shared_targets()
            R.flags.writeable = False
            cache = (W.copy(), R)
            self.__dict__["_shared_residual"] = cache
        return cache[1]

    def residual_means(self, W: np.ndarray) -> np.ndarray:
        """Per-task means of the residuals ``X_t w_t − y_t`` (T,) for ``W`` (d, T)."""
        if self.is_shared:  # down the (n, T) residual: nothing stacked
            return column_means(self.shared_residuals(W))
        return self.task_sums(self.stacked_residuals(W)) / self.n_samples

    def stacked_residuals(self, W: np.ndarray,
                          intercept: np.ndarray | None = None) -> np.ndarray:
        """Residuals ``x_nᵀ w_{t(n)} + b_{t(n)} − y_n`` of every stacked row (N,)."""
        if self.is_shared:
            r = self.shared_residuals(W)
            if intercept is not None:
                r = r + intercept
            return r.T.ravel()
        r = self._residual_product(W).copy()
        if intercept is not None:
            r += intercept[self._task_index()]
        return r

    def _residual_product(self, W: np.ndarray) -> np.ndarray:
        """:meth:`stacked_residuals` of per-task designs without intercepts, read-only:
        kept for the last W (compared exactly), as shared_residuals does, so the
        objective and the certificate at one point share one product."""
        cache = self.__dict__.get("_stacked_product")
        if cache is None or cache[0].shape != W.shape or not (cache[0] == W).all():
            W = np.asarray(W, dtype=np.float64)
            blocks = self.equal_blocks()
            if blocks is not None:  # equal task sizes: one batched product, no d×N gather
                X3, Y2 = blocks
                r = (np.matmul(X3, W.T[:, :, None])[:, :, 0] - Y2).ravel()
            else:
                X, y, task = self.stacked()
                X = X.view(np.ndarray)
                if self.n_tasks * _LOOP_COST < X.size:  # few tasks: one product each
                    Xw = np.empty(X.shape[0])
                    ends = np.cumsum(self.n_samples)
                    for t, (start, end) in enumerate(zip(self.task_starts(), ends,
                                                         strict=True)):
                        np.dot(X[start:end], W[:, t], out=Xw[start:end])
                else:  # many small tasks: the coefficients gathered row by row
                    Xw = np.einsum("nd,nd->n", X, np.ascontiguousarray(W.T)[task])
                r = Xw - y
            r.flags.writeable = False
            cache = (W.copy(), r)
            self.__dict__["_stacked_product"] = cache
        return cache[1]

    def task_sums(self, values: np.ndarray) -> np.ndarray:
        """Per-task sums of a per-row array: (N,) -> (T,), or (N, k) -> (T, k)."""
        if (self.n_samples == self.n_samples[0]).all():  # task-major rows: a reshape
            return values.reshape(self.n_tasks, -1, *values.shape[1:]).sum(axis=1)
        if values.ndim == 1:
            return np.add.reduceat(values, self.task_starts())
        indicator = self.__dict__.get("_task_indicator")
        if indicator is None:
            import scipy.sparse as sp

            N = int(self.n_samples.sum())
            indptr = np.concatenate((self.task_starts(), [N]))
            indicator = sp.csr_matrix((np.ones(N), np.arange(N), indptr),
                                      shape=(self.n_tasks, N))
            self.__dict__["_task_indicator"] = indicator
        return np.asarray(indicator @ values)

    def task_products(self, theta: np.ndarray) -> np.ndarray:
        """``X_tᵀθ_t`` of every task (d, T) for a per-row ``θ`` (N,) (tasks of any sizes)."""
        blocks = self.equal_blocks()
        if blocks is not None:
            return np.matmul(blocks[0].transpose(0, 2, 1),
                             theta.reshape(self.n_tasks, -1, 1))[:, :, 0].T
        # θ as the entries of a (T, N) task indicator: one sparse product, no (N, d) temporary
        import scipy.sparse as sp

        N = theta.shape[0]
        weighted = sp.csr_matrix((theta, np.arange(N), np.concatenate((self.task_starts(), [N]))),
                                 shape=(self.n_tasks, N))
        return np.asarray(weighted @ self.stacked()[0].view(np.ndarray)).T

    def predict(self, W: np.ndarray, intercept: np.ndarray | None = None) -> list[np.ndarray]:
        """Per-task predictions ``X_t w_t + b_t`` for ``W`` (d, T)."""
        preds = [self.X[t] @ W[:, t] for t in range(self.n_tasks)]
        if intercept is not None:
            preds = [p + intercept[t] for t, p in enumerate(preds)]
        return preds

    def __repr__(self) -> str:
        kind = "shared design, " if self.is_shared else ""
        return (f"MultiTaskData({kind}n_tasks={self.n_tasks}, n_features={self.n_features}, "
                f"n_samples={int(self.n_samples.sum())})")
