"""MultiTaskData behaviour (compression of shared designs, validation) and the shipped datasets."""

from __future__ import annotations

import numpy as np
import pytest

import mtlcvx as mc
from mtlcvx import data as data_module


# --------------------------------------------------------------------------- construction
def test_tasks_keep_list_order(rng):
    sizes = [7, 3, 11]
    Xs = [rng.standard_normal((n, 4)) for n in sizes]
    ys = [rng.standard_normal(n) for n in sizes]
    data = mc.MultiTaskData(Xs, ys, tasks=["zeta", "alpha", "mu"])
    assert data.tasks == ["zeta", "alpha", "mu"]  # not sorted
    assert data.n_tasks == 3 and data.n_features == 4
    assert list(data.n_samples) == sizes
    for t in range(3):
        np.testing.assert_array_equal(data.X[t], Xs[t])
        np.testing.assert_array_equal(data.y[t], ys[t])
        assert data.X[t].dtype == np.float64 and data.y[t].dtype == np.float64
    assert mc.MultiTaskData(Xs, ys).tasks == [0, 1, 2]
    # tuples and generators of arrays work like lists
    tup = mc.MultiTaskData(tuple(Xs), (y for y in ys))
    np.testing.assert_array_equal(tup.y[2], ys[2])
    assert not data.is_shared


@pytest.mark.parametrize("labels", [np.array(["z", "a", "m"]), np.array([30, -2, 7])])
def test_from_stacked_sorts_and_groups(rng, labels):
    n, d = 40, 3
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    task = labels[rng.integers(0, 3, size=n)]
    data = mc.MultiTaskData.from_stacked(X, y, task)
    expected = sorted(set(task.tolist()))
    assert data.tasks == expected
    # manual grouping: rows of each label, in their original order
    for t, label in enumerate(expected):
        rows = [i for i in range(n) if task[i] == label]
        np.testing.assert_array_equal(data.X[t], X[rows])
        np.testing.assert_array_equal(data.y[t], y[rows])
    assert int(data.n_samples.sum()) == n
    # y as a column vector is accepted too
    col = mc.MultiTaskData.from_stacked(X, y[:, None], task)
    for t in range(3):
        np.testing.assert_array_equal(col.y[t], data.y[t])


def test_from_stacked_accepts_lists_and_pandas(rng):
    pd = pytest.importorskip("pandas")
    X = rng.standard_normal((6, 2))
    y = rng.standard_normal(6)
    task = ["b", "a", "b", "a", "c", "c"]
    frame = pd.DataFrame(X, columns=["f0", "f1"])
    data = mc.MultiTaskData.from_stacked(frame, pd.Series(y), pd.Series(task))
    assert data.tasks == ["a", "b", "c"]
    np.testing.assert_array_equal(data.X[0], X[[1, 3]])
    np.testing.assert_array_equal(data.y[2], y[[4, 5]])


def test_shared_design(rng):
    n, d, T = 12, 4, 5
    X = rng.standard_normal((n, d))
    Y = rng.standard_normal((n, T))
    data = mc.MultiTaskData.shared(X, Y, tasks=list("abcde"))
    assert data.is_shared and data.n_tasks == T and data.tasks == list("abcde")
    for t in range(T):
        np.testing.assert_array_equal(data.X[t], X)
        np.testing.assert_array_equal(data.y[t], Y[:, t])
    assert data.compressed(False).shared and data.compressed(True).shared
    # detected from equal copies, not only from identity
    copies = mc.MultiTaskData([X.copy() for _ in range(T)], [Y[:, t] for t in range(T)])
    assert copies.is_shared
    X2 = X.copy()
    X2[0, 0] += 1e-3
    assert not mc.MultiTaskData([X, X2], [Y[:, 0], Y[:, 1]]).is_shared
    assert not mc.MultiTaskData([X, X[:-1]], [Y[:, 0], Y[:-1, 1]]).is_shared
    # shared and per-task give the same objective
    W = rng.standard_normal((d, T))
    pens = [mc.Ridge(0.3)]
    hetero = mc.MultiTaskData([X + 0.0 for _ in range(T)], [Y[:, t] for t in range(T)])
    assert mc.Problem(data, penalties=pens).objective(W) == pytest.approx(
        mc.Problem(hetero, penalties=pens).objective(W), rel=1e-13)


def test_uint8_converted_before_products(rng):
    n, d, T = 30, 3, 2
    Xu = [rng.integers(100, 256, size=(n, d)).astype(np.uint8) for _ in range(T)]
    yu = [rng.integers(1, 71, size=n).astype(np.uint8) for _ in range(T)]
    Xf = [x.astype(np.float64) for x in Xu]
    yf = [y.astype(np.float64) for y in yu]
    # the products really would overflow in uint8
    assert not np.array_equal((Xu[0].T @ Xu[0]).astype(float), Xf[0].T @ Xf[0])
    assert not np.array_equal(Xu[0] @ np.ones(d, np.uint8), Xf[0] @ np.ones(d))
    data = mc.MultiTaskData(Xu, yu)
    assert all(x.dtype == np.float64 for x in data.X)
    assert all(y.dtype == np.float64 for y in data.y)
    W = rng.standard_normal((d, T))
    pen = mc.Ridge(0.5)
    prob = mc.Problem(data, mc.SquaredLoss(scale="sum"), [pen])
    expected = sum(0.5 * np.sum((Xf[t] @ W[:, t] - yf[t]) ** 2) for t in range(T))
    expected += 0.25 * np.sum(W**2)
    assert prob.objective(W) == pytest.approx(expected, rel=1e-12)
    # the compiled (compressed) objective is the float computation too
    prob.cvxpy_variable.value = W
    assert prob.cvxpy.objective.value + prob.cvxpy_offset == pytest.approx(expected, rel=1e-9)
    # and the exact optimum is the float one
    sol = prob.solve(backend="direct")
    for t in range(T):
        ref = np.linalg.solve(Xf[t].T @ Xf[t] + 0.5 * np.eye(d), Xf[t].T @ yf[t])
        np.testing.assert_allclose(sol.W[:, t], ref, rtol=1e-9)
    # shared uint8 designs and integer / boolean inputs are converted too
    shared = mc.MultiTaskData.shared(Xu[0], np.stack(yu, axis=1))
    assert shared.X[0].dtype == np.float64 and shared.is_shared
    ints = mc.MultiTaskData([Xu[0].astype(np.int16)], [yu[0] > 30])
    assert ints.X[0].dtype == np.float64 and ints.y[0].dtype == np.float64


def test_y_column_vector_accepted(rng):
    Xs = [rng.standard_normal((5, 2)), rng.standard_normal((4, 2))]
    ys = [rng.standard_normal((5, 1)), rng.standard_normal(4)]
    data = mc.MultiTaskData(Xs, ys)
    assert data.y[0].shape == (5,) and data.y[1].shape == (4,)
    np.testing.assert_array_equal(data.y[0], ys[0][:, 0])


def test_predict(rng):
    Xs = [rng.standard_normal((5, 3)), rng.standard_normal((4, 3))]
    data = mc.MultiTaskData(Xs, [np.zeros(5), np.zeros(4)])
    W = rng.standard_normal((3, 2))
    b = np.array([1.0, -2.0])
    preds = data.predict(W, b)
    np.testing.assert_allclose(preds[0], Xs[0] @ W[:, 0] + 1.0)
    np.testing.assert_allclose(preds[1], Xs[1] @ W[:, 1] - 2.0)


# --------------------------------------------------------------------------- QR compression
@pytest.mark.parametrize("center", [False, True])
def test_compression_keeps_objective_exact(rng, center):
    d = 6
    sizes = [40, 13, 7, 6, 4, 1]  # tall, just taller, square, shorter, a single row
    Xs = [rng.standard_normal((n, d)) * rng.uniform(0.1, 10) + rng.standard_normal(d)
          for n in sizes]
    ys = [rng.standard_normal(n) * 5 + 3 for n in sizes]
    data = mc.MultiTaskData(Xs, ys)
    comp = data.compressed(center)
    assert comp is data.compressed(center)  # computed once
    assert not comp.shared
    assert comp.offset.shape == (len(sizes),) and np.all(comp.offset >= 0)
    if center:
        np.testing.assert_allclose(comp.x_mean, np.stack([x.mean(0) for x in Xs], axis=1))
        np.testing.assert_allclose(comp.y_mean, [y.mean() for y in ys])
    else:
        assert comp.x_mean is None and comp.y_mean is None
    for t, n in enumerate(sizes):
        A, z = comp.A[t], comp.z[t]
        assert A.shape == (min(n, d), d) and z.shape == (min(n, d),)
        Xt, yt = Xs[t], ys[t]
        if center:
            Xt, yt = Xt - Xt.mean(axis=0), yt - yt.mean()
        for _ in range(3):
            w = rng.standard_normal(d) * 3
            lhs = np.sum((Xt @ w - yt) ** 2)
            rhs = np.sum((A @ w - z) ** 2) + comp.offset[t]
            assert rhs == pytest.approx(lhs, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("center", [False, True])
def test_compression_shared_design(rng, center):
    n, d, T = 50, 4, 3
    X = rng.standard_normal((n, d)) + 2.0
    Y = rng.standard_normal((n, T)) + 1.0
    data = mc.MultiTaskData.shared(X, Y)
    comp = data.compressed(center)
    assert comp.shared and all(A is comp.A[0] for A in comp.A)
    assert comp.A[0].shape == (d, d)
    Xc = X - X.mean(axis=0) if center else X
    for t in range(T):
        yt = Y[:, t] - Y[:, t].mean() if center else Y[:, t]
        w = rng.standard_normal(d)
        lhs = np.sum((Xc @ w - yt) ** 2)
        rhs = np.sum((comp.A[t] @ w - comp.z[t]) ** 2) + comp.offset[t]
        assert rhs == pytest.approx(lhs, rel=1e-10)


def test_compressed_cvxpy_objective_matches_original(rng):
    sizes = [50, 3, 9]
    Xs = [rng.standard_normal((n, 5)) for n in sizes]
    ys = [rng.standard_normal(n) + 4 for n in sizes]
    data = mc.MultiTaskData(Xs, ys)
    for fit_intercept in (False, True):
        prob = mc.Problem(data, penalties=[mc.Ridge(0.2)], fit_intercept=fit_intercept)
        W = rng.standard_normal((5, 3))
        prob.cvxpy_variable.value = W
        got = prob.cvxpy.objective.value + prob.cvxpy_offset
        assert got == pytest.approx(prob.objective(W), rel=1e-10)


# --------------------------------------------------------------------------- datasets
def test_load_school_raw():
    data = mc.datasets.load_school()
    assert isinstance(data, mc.MultiTaskData)
    assert data.n_tasks == 139
    assert int(data.n_samples.sum()) == 15362
    assert data.n_features == 28
    assert data.n_samples.min() == 22 and data.n_samples.max() == 251
    assert np.all((22 <= data.n_samples) & (data.n_samples <= 251))
    assert all(np.all(Xt[:, -1] == 1.0) for Xt in data.X)
    ys = np.concatenate(data.y)
    assert ys.min() >= 1 and ys.max() <= 70
    assert all(Xt.dtype == np.float64 for Xt in data.X)
    assert data.tasks == list(range(139))
    assert not data.is_shared


def test_load_school_standardized():
    data = mc.datasets.load_school(standardize=True)
    assert data.n_tasks == 139 and data.n_features == 27
    assert int(data.n_samples.sum()) == 15362
    stacked = np.vstack(data.X)
    np.testing.assert_allclose(stacked.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(stacked.std(axis=0), 1.0, rtol=1e-10)
    # same targets and task sizes as the raw data
    raw = mc.datasets.load_school()
    np.testing.assert_array_equal(data.n_samples, raw.n_samples)
    np.testing.assert_array_equal(np.concatenate(data.y), np.concatenate(raw.y))


def test_make_related_tasks_truth():
    T, d, k = 9, 15, 3
    data, truth = mc.datasets.make_related_tasks(
        n_tasks=T, n_features=d, n_samples=[20 + t for t in range(T)], n_clusters=k,
        spread=0.1, random_state=0, return_truth=True)
    assert data.n_tasks == T and data.n_features == d
    assert list(data.n_samples) == [20 + t for t in range(T)]
    W, labels = truth["W"], truth["labels"]
    assert W.shape == (d, T)
    np.testing.assert_array_equal(labels, np.arange(T) % k)
    dist = np.linalg.norm(W[:, :, None] - W[:, None, :], axis=0)
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(T, dtype=bool)
    assert dist[same & off].max() < dist[~same].min()
    A = truth["adjacency"]
    np.testing.assert_array_equal(A, (same & off).astype(float))
    np.testing.assert_allclose(truth["K"], mc.relations.from_clusters(labels))
    # deterministic, and the planted W explains the data (noise 0.5)
    again = mc.datasets.make_related_tasks(
        n_tasks=T, n_features=d, n_samples=[20 + t for t in range(T)], n_clusters=k,
        spread=0.1, random_state=0)
    np.testing.assert_array_equal(again.X[3], data.X[3])
    resid = np.concatenate([data.X[t] @ W[:, t] - data.y[t] for t in range(T)])
    assert 0.3 < resid.std() < 0.7


def test_make_related_tasks_shared():
    data = mc.datasets.make_related_tasks(n_tasks=4, n_features=3, n_samples=10,
                                          shared_design=True, random_state=1)
    assert data.is_shared and data.n_tasks == 4
    with pytest.raises(mc.DataError):
        mc.datasets.make_related_tasks(n_tasks=2, n_samples=[3, 4], shared_design=True)


def test_gram_product_matches_extended_precision_and_follows_w(rng):
    # G W from the non-zero rows only (sparse W) or all of them (dense W), against
    # X̃ᵀ(X̃W) in long double; an in-place change of W is not served from the cache
    X, Y = rng.standard_normal((40, 6)), rng.standard_normal((40, 3))
    data = mc.MultiTaskData.shared(X, Y)
    W = np.zeros((6, 3))
    W[[1, 4]] = rng.standard_normal((2, 3))
    for center in (False, True):
        Xc = (X - X.mean(axis=0) if center else X).astype(np.longdouble)
        for _ in range(2):
            exact = Xc.T @ (Xc @ W.astype(np.longdouble))
            GW = data.gram_product(W, center)
            np.testing.assert_allclose(GW, exact.astype(float),
                                       rtol=1e-12, atol=1e-12 * float(np.abs(exact).max()))
            assert not GW.flags.writeable  # the kept product cannot be edited by a caller
            W[:] = rng.standard_normal((6, 3))  # dense now, same object


def test_shared_copies_unless_told_or_immutable(rng):
    # held read-only either way; memory shared only with copy=False or an input nothing can
    # write to (read-only down to the array owning the memory); the caller's flags untouched
    X, Y = rng.standard_normal((30, 4)), rng.standard_normal((30, 2))
    W = rng.standard_normal((4, 2))
    before = 0.5 * float(np.sum((X @ W - Y) ** 2)) / 30
    copied = mc.MultiTaskData.shared(X, Y)
    borrowed = mc.MultiTaskData.shared(X, Y, copy=False)
    assert not np.shares_memory(copied.X[0], X) and not np.shares_memory(copied.y[0], Y)
    assert np.shares_memory(borrowed.X[0], X) and np.shares_memory(borrowed.y[1], Y)
    for data in (copied, borrowed):
        assert not data.X[0].flags.writeable and not data.y[0].flags.writeable
    assert X.flags.writeable and Y.flags.writeable
    X *= 2.0  # the copy does not see it, the borrowed views do
    prob = mc.Problem(copied, penalties=[], fit_intercept=False)
    assert prob.objective(W) == pytest.approx(before, rel=1e-13)
    np.testing.assert_array_equal(borrowed.X[0], X)

    frozen = X.copy()
    frozen.setflags(write=False)
    assert np.shares_memory(mc.MultiTaskData.shared(frozen, Y).X[0], frozen)
    view = X[:, :]  # read-only view of a writable array: its base can still change it
    view.setflags(write=False)
    assert not np.shares_memory(mc.MultiTaskData.shared(view, Y).X[0], X)
    fortran = np.asfortranarray(X)  # not C order: copied, whatever copy says
    assert not np.shares_memory(mc.MultiTaskData.shared(fortran, Y, copy=False).X[0], fortran)


def test_centred_gram_in_row_blocks_matches_extended_precision(rng):
    # n spans several blocks of the centring buffer and a partial last one; far-off means
    n, d, T = 2500, 30, 4
    X = rng.standard_normal((n, d)) + 50.0
    Y = rng.standard_normal((n, T)) - 20.0
    assert n > data_module._BLOCK_ENTRIES // (d + T) and n % (data_module._BLOCK_ENTRIES
                                                            // (d + T))
    gram = mc.MultiTaskData.shared(X, Y).gram(True)
    Xl, Yl = X.astype(np.longdouble), Y.astype(np.longdouble)
    Xc, Yc = Xl - Xl.mean(axis=0), Yl - Yl.mean(axis=0)
    for got, exact in ((gram.G, Xc.T @ Xc), (gram.B, Xc.T @ Yc),
                       (gram.yy, np.einsum("nt,nt->t", Yc, Yc))):
        np.testing.assert_allclose(got, exact.astype(float), rtol=0,
                                   atol=1e-12 * float(np.abs(exact).max()))


def test_means_and_kept_residual_match_extended_precision(rng):
    # column means by a matrix-vector product, the residual's per-task means (shared and
    # per-task designs) and the kept X W − Y, against long double; an in-place change of
    # W is not served from the kept residual, which a caller cannot edit
    X, Y = rng.standard_normal((300, 5)) + 3.0, rng.standard_normal((300, 4)) - 7.0
    W = rng.standard_normal((5, 4))
    shared = mc.MultiTaskData.shared(X, Y)
    Xl, Yl = X.astype(np.longdouble), Y.astype(np.longdouble)
    x_mean, y_mean = shared.shared_means()
    np.testing.assert_allclose(x_mean, Xl.mean(axis=0).astype(float), rtol=1e-14)
    np.testing.assert_allclose(y_mean, Yl.mean(axis=0).astype(float), rtol=1e-14)
    per_task = mc.MultiTaskData([X[:100], X[100:], X[:50]], [Y[:100, 0], Y[100:, 1], Y[:50, 2]])
    for _ in range(2):
        R = Xl @ W.astype(np.longdouble) - Yl
        np.testing.assert_allclose(shared.shared_residuals(W), R.astype(float),
                                   rtol=0, atol=1e-13 * float(np.abs(R).max()))
        assert not shared.shared_residuals(W).flags.writeable
        np.testing.assert_allclose(shared.residual_means(W), R.mean(axis=0).astype(float),
                                   rtol=1e-13)
        expected = [np.mean(Xl[rows] @ W[:, t].astype(np.longdouble) - Yl[rows, t])
                    for t, rows in enumerate((slice(0, 100), slice(100, 300), slice(0, 50)))]
        np.testing.assert_allclose(per_task.residual_means(W[:, :3]),
                                   np.array(expected, dtype=float), rtol=1e-13)
        W[:] = rng.standard_normal((5, 4))  # same object, new values
