"""Datasets: the School benchmark (shipped) and synthetic tasks with a planted structure."""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np

from . import relations
from .data import MultiTaskData
from .exceptions import DataError

__all__ = ["load_school", "make_related_tasks", "quick_mode"]


def quick_mode(quick: bool | None = None) -> bool:
    """Whether an example should run its quick (small) version.

    Parameters
    ----------
    quick : bool or None
        An explicit choice wins; None reads the ``MTLCVX_QUICK`` environment variable
        (``"1"`` means quick), which the documentation gallery sets so every example
        runs in seconds.

    Returns
    -------
    bool
    """
    if quick is None:
        return os.environ.get("MTLCVX_QUICK", "") == "1"
    return bool(quick)


def load_school(standardize: bool = False) -> MultiTaskData:
    """The School benchmark (ILEA exam scores; Goldstein 1991) as shipped by MALSAR.

    139 tasks (schools) in file order, 15,362 students, 22–251 per school. The target is
    the exam score (1–70). Loaded from a copy inside the package (about 45 KB); never
    downloaded.

    Parameters
    ----------
    standardize : bool, default False
        False: the raw 28 columns, the last one the constant bias column (MALSAR's
        convention: the bias is then penalised like any feature). True: the 27
        attributes z-scored over all students and the bias column dropped (use with
        ``fit_intercept=True``).

    Returns
    -------
    MultiTaskData
        ``n_tasks = 139``, ``n_features = 28`` (raw) or 27 (standardized).
    """
    import scipy.io

    with resources.files("mtlcvx").joinpath("school.mat").open("rb") as fh:
        mat = scipy.io.loadmat(fh)
    Xs = [np.asarray(x, dtype=np.float64) for x in mat["X"][0]]
    ys = [np.asarray(y, dtype=np.float64).ravel() for y in mat["Y"][0]]
    if standardize:
        stacked = np.vstack(Xs)[:, :27]
        mean, std = stacked.mean(axis=0), stacked.std(axis=0)
        std[std == 0] = 1.0
        Xs = [(x[:, :27] - mean) / std for x in Xs]
    return MultiTaskData(Xs, ys)


def make_related_tasks(
    n_tasks: int = 10,
    n_features: int = 20,
    n_samples: int | Sequence[int] = 50,
    *,
    n_clusters: int = 2,
    spread: float = 0.1,
    noise: float = 0.5,
    shared_design: bool = False,
    random_state: int | np.random.Generator | None = None,
    return_truth: bool = False,
) -> MultiTaskData | tuple[MultiTaskData, dict[str, Any]]:
    """Synthetic regression tasks whose weight vectors form planted clusters.

    Task ``t`` belongs to cluster ``t mod n_clusters``; its weights are the cluster
    centre (standard normal) plus ``spread`` × standard normal noise, its design is
    standard normal, and ``y_t = X_t w_t + noise·ε``.

    Parameters
    ----------
    n_tasks, n_features : int
    n_samples : int or sequence of int
        Samples per task (one value, or one per task).
    n_clusters : int
        Number of planted task clusters.
    spread : float
        Within-cluster standard deviation of the weights.
    noise : float
        Standard deviation of the target noise.
    shared_design : bool
        Give every task the same design (then ``n_samples`` must be one value).
    random_state : int, Generator or None
    return_truth : bool
        Also return ``{"W": (d, T), "labels": (T,), "adjacency": (T, T) same-cluster
        graph, "K": within-cluster deviation matrix}``.
    """
    if n_tasks < 1 or n_features < 1 or not 1 <= n_clusters <= n_tasks:
        raise DataError("need n_tasks ≥ 1, n_features ≥ 1 and 1 ≤ n_clusters ≤ n_tasks")
    rng = np.random.default_rng(random_state)
    counts = np.broadcast_to(np.asarray(n_samples, dtype=int), (n_tasks,))
    if np.any(counts < 1):
        raise DataError("n_samples must be ≥ 1 for every task")
    labels = np.arange(n_tasks) % n_clusters
    centres = rng.standard_normal((n_features, n_clusters))
    W = centres[:, labels] + spread * rng.standard_normal((n_features, n_tasks))
    if shared_design:
        if np.unique(counts).size != 1:
            raise DataError("shared_design=True needs one n_samples for all tasks")
        X = rng.standard_normal((int(counts[0]), n_features))
        Y = X @ W + noise * rng.standard_normal((int(counts[0]), n_tasks))
        data = MultiTaskData.shared(X, Y)
    else:
        Xs = [rng.standard_normal((int(n), n_features)) for n in counts]
        ys = [Xs[t] @ W[:, t] + noise * rng.standard_normal(int(counts[t]))
              for t in range(n_tasks)]
        data = MultiTaskData(Xs, ys)
    if not return_truth:
        return data
    adjacency = (labels[:, None] == labels[None, :]).astype(float)
    np.fill_diagonal(adjacency, 0.0)
    truth = {"W": W, "labels": labels, "adjacency": adjacency,
             "K": relations.from_clusters(labels)}
    return data, truth
