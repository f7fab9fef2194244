"""MultiTaskRegressor: scikit-learn's contract, and every number against scikit-learn itself.

Conversions used below (mtlcvx's loss is Σ_t 1/(2 n_t) ‖X_t w_t + b_t − y_t‖²):
* ``Ridge(alpha=a)`` = (a/2)‖W‖²_F separates over tasks; times 2 n_t it is scikit-learn's
  ``Ridge(alpha=n_t·a)`` on task t.
* ``L21(alpha=a)`` with a shared design is exactly ``MultiTaskLasso(alpha=a)``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import Lasso, MultiTaskElasticNet, MultiTaskLasso, Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import mtlcvx as mc
from mtlcvx.estimators import MultiTaskRegressor


@parametrize_with_checks([MultiTaskRegressor()])
def test_sklearn_conformance(estimator, check):
    check(estimator)


def _shared(rng, n=60, d=5, T=3):
    X = rng.normal(size=(n, d))
    Y = X @ rng.normal(size=(d, T)) + 0.5 * rng.normal(size=(n, T)) + rng.normal(size=T)
    return X, Y


def _long(rng, sizes=(15, 25, 40), d=4, labels=("north", "east", "west")):
    """A long-format frame with unequal tasks, string labels and named features."""
    frames = []
    for label, n in zip(labels, sizes, strict=True):
        X = rng.normal(size=(n, d))
        y = X @ rng.normal(size=d) + 0.3 * rng.normal(size=n) + rng.normal()
        frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(d)])
        frame.insert(2, "school", label)
        frame["score"] = y
        frames.append(frame)
    df = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=0)
    return df.drop(columns="score"), df["score"]


def _per_task_ridge(X, y, task, alpha):
    """scikit-learn Ridge fitted on each task alone: {label: fitted Ridge}."""
    return {t: Ridge(alpha=np.sum(task == t) * alpha, tol=1e-12).fit(X[task == t], y[task == t])
            for t in np.unique(task)}


def test_ridge_shared_design_matches_sklearn(rng):
    X, Y = _shared(rng)
    est = MultiTaskRegressor(penalties=[mc.Ridge(alpha=0.3)]).fit(X, Y)
    ref = Ridge(alpha=X.shape[0] * 0.3).fit(X, Y)
    assert est.coef_.shape == (3, 5) and est.intercept_.shape == (3,)
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(est.intercept_, ref.intercept_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(est.predict(X), ref.predict(X), rtol=1e-9)
    assert est.score(X, Y) == pytest.approx(r2_score(Y, ref.predict(X)), rel=1e-10)
    assert list(est.tasks_) == [0, 1, 2] and est.solution_.status == "optimal"
    assert est.certificate_.relative_gap <= 1e-8


def test_one_dimensional_y_is_one_task(rng):
    X, Y = _shared(rng)
    est = MultiTaskRegressor(penalties=[mc.Ridge(alpha=0.1)], fit_intercept=False).fit(X, Y[:, 0])
    ref = Ridge(alpha=X.shape[0] * 0.1, fit_intercept=False).fit(X, Y[:, 0])
    assert est.coef_.shape == (5,) and est.intercept_ == 0.0
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-9)
    assert est.predict(X).shape == (X.shape[0],)


def test_l21_shared_design_matches_multitask_lasso(rng):
    X = rng.normal(size=(80, 8))
    Y = X[:, :3] @ rng.normal(size=(3, 4)) + 0.5 * rng.normal(size=(80, 4))
    est = MultiTaskRegressor(penalties=[mc.L21(alpha=0.2)], backend="clarabel").fit(X, Y)
    ref = MultiTaskLasso(alpha=0.2, tol=1e-14, max_iter=100_000).fit(X, Y)
    assert np.count_nonzero(np.all(ref.coef_ == 0, axis=0)) > 0  # some rows are zero
    np.testing.assert_allclose(est.coef_, ref.coef_, atol=1e-6)
    np.testing.assert_allclose(est.intercept_, ref.intercept_, atol=1e-6)
    default = MultiTaskRegressor(penalties=[mc.L21(alpha=0.2)]).fit(X, Y)  # backend=None
    assert default.solution_.status == "optimal"
    np.testing.assert_allclose(default.coef_, ref.coef_, atol=1e-6)


@pytest.mark.parametrize("ours, theirs", [
    ([mc.L21(alpha=0.06), mc.Ridge(alpha=0.04)], MultiTaskElasticNet(alpha=0.1, l1_ratio=0.6)),
    ([mc.L1(alpha=0.05)], Lasso(alpha=0.05)),
])
def test_conversion_table_of_the_docs(rng, ours, theirs):
    X, Y = _shared(rng, n=70, d=6, T=3)
    est = MultiTaskRegressor(penalties=ours, backend="clarabel").fit(X, Y)
    ref = theirs.set_params(tol=1e-14, max_iter=100_000).fit(X, Y)
    np.testing.assert_allclose(est.coef_, ref.coef_, atol=2e-6)


def test_long_format_matches_per_task_ridge_and_data_predict(rng):
    X, y = _long(rng)
    est = MultiTaskRegressor(penalties=[mc.Ridge(alpha=0.05)], task_col="school").fit(X, y)
    feats = X.drop(columns="school").to_numpy()
    task = X["school"].to_numpy()
    refs = _per_task_ridge(feats, y.to_numpy(), task, 0.05)
    assert list(est.tasks_) == ["east", "north", "west"]
    assert list(est.feature_names_in_) == ["f0", "f1", "f2", "f3"]
    for t, label in enumerate(est.tasks_):
        np.testing.assert_allclose(est.coef_[t], refs[label].coef_, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(est.intercept_[t], refs[label].intercept_, rtol=1e-9)
    # predictions row by row equal the data's own per-task predictions at the solution
    data = mc.MultiTaskData.from_frame(pd.concat([X, y], axis=1), task="school", target="score")
    sol = est.solution_
    per_task = data.predict(sol.W, sol.intercept)
    pred = est.predict(X)
    for t, label in enumerate(data.tasks):
        np.testing.assert_allclose(pred[task == label], per_task[t], rtol=1e-13, atol=1e-14)
    pooled = 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)
    assert est.score(X, y) == pytest.approx(pooled, rel=1e-12)


def test_long_format_with_array_and_column_index(rng):
    X, y = _long(rng, labels=(3, 1, 2))
    arr = X.to_numpy(dtype=float)  # the task column (index 2) holds 3, 1, 2
    est = MultiTaskRegressor(penalties=[mc.Ridge(alpha=0.05)], task_col=2).fit(arr, y)
    refs = _per_task_ridge(np.delete(arr, 2, axis=1), y.to_numpy(), arr[:, 2], 0.05)
    assert list(est.tasks_) == [1.0, 2.0, 3.0] and est.n_features_in_ == 4
    for t, label in enumerate(est.tasks_):
        np.testing.assert_allclose(est.coef_[t], refs[label].coef_, rtol=1e-9, atol=1e-12)


def test_unseen_task_at_predict_is_named(rng):
    X, y = _long(rng)
    est = MultiTaskRegressor(penalties=[mc.Ridge(alpha=0.1)], task_col="school").fit(X, y)
    X2 = X.copy()
    X2.loc[X2.index[0], "school"] = "south"
    with pytest.raises(ValueError, match="task 'south'.*not seen in fit"):
        est.predict(X2)


def test_task_column_errors_name_the_fix(rng):
    X, y = _long(rng)
    arr = X.drop(columns="school").to_numpy()
    cases = [(MultiTaskRegressor(task_col="district"), X, "task_col='district' is not a column"),
             (MultiTaskRegressor(task_col="school"), arr, "must be a column index"),
             (MultiTaskRegressor(task_col=9), arr, "task_col=9 is out of range"),
             (MultiTaskRegressor(task_col=0), arr[:, 0], "must be 2-D"),
             (MultiTaskRegressor(fit_intercept="yes"), arr, "fit_intercept must be True or False"),
             (MultiTaskRegressor(penalties=3.0), arr, "penalties must be a list")]
    for est, data, match in cases:
        with pytest.raises(mc.MTLError, match=match):
            est.fit(data, y)


def test_mixed_type_task_labels_refused(rng):
    X, y = _long(rng)
    X = X.astype({"school": object})
    X.loc[X.index[0], "school"] = 7
    est = MultiTaskRegressor(task_col="school")
    with pytest.raises(mc.DataError, match="mixes label types"):
        est.fit(X, y)


def test_params_are_nested_and_penalties_never_mutated(rng):
    pen = mc.L21(alpha=0.1)
    est = MultiTaskRegressor(penalties=[pen, mc.Ridge(alpha=0.2)])
    params = est.get_params(deep=True)
    assert params["penalties__0"] is pen and params["penalties__0__alpha"] == 0.1
    assert params["penalties__1__alpha"] == 0.2
    assert est.set_params(penalties__0__alpha=0.5, tol=1e-7) is est
    assert pen.alpha == 0.1  # the caller's object is untouched
    assert est.penalties[0].alpha == 0.5 and est.tol == 1e-7
    replacement = mc.L1(alpha=0.3)
    est.set_params(penalties__1=replacement, penalties__1__alpha=0.4)
    assert isinstance(est.penalties[1], mc.L1) and est.penalties[1].alpha == 0.4
    assert replacement.alpha == 0.3
    copy = clone(est)
    assert copy.penalties[0] is not est.penalties[0] and copy.penalties[0].alpha == 0.5
    with pytest.raises(ValueError, match="has 2 penalties"):
        est.set_params(penalties__2__alpha=1.0)
    with pytest.raises(ValueError, match="has 0 penalties .penalties=None means the default"):
        MultiTaskRegressor().set_params(penalties__0__alpha=1.0)
    X, Y = _shared(rng)
    est.fit(X, Y)
    assert est.penalties[0].__dict__ == mc.L21(alpha=0.5).__dict__  # fit works on clones


def test_grid_search_shared_design_equals_hand_loop(rng):
    X, Y = _shared(rng, n=45)
    alphas = [0.01, 0.1, 1.0]
    cv = KFold(3, shuffle=True, random_state=0)
    grid = GridSearchCV(MultiTaskRegressor(penalties=[mc.Ridge(alpha=1.0)]),
                        {"penalties__0__alpha": alphas}, cv=cv).fit(X, Y)
    hand = [np.mean([r2_score(Y[te], Ridge(alpha=len(tr) * a).fit(X[tr], Y[tr]).predict(X[te]))
                     for tr, te in cv.split(X)]) for a in alphas]
    np.testing.assert_allclose(grid.cv_results_["mean_test_score"], hand, rtol=1e-9)
    assert grid.best_params_["penalties__0__alpha"] == alphas[int(np.argmax(hand))]


def test_grid_search_long_format_equals_hand_loop(rng):
    X, y = _long(rng, sizes=(18, 24, 30))
    alphas = [0.01, 0.3]
    folds = list(StratifiedKFold(3, shuffle=True, random_state=1).split(X, X["school"]))
    est = MultiTaskRegressor(penalties=[mc.Ridge(alpha=1.0)], task_col="school")
    grid = GridSearchCV(est, {"penalties__0__alpha": alphas}, cv=folds).fit(X, y)
    feats, task, yv = X.drop(columns="school").to_numpy(), X["school"].to_numpy(), y.to_numpy()
    hand = []
    for a in alphas:
        scores = []
        for tr, te in folds:
            refs = _per_task_ridge(feats[tr], yv[tr], task[tr], a)
            pred = np.array([refs[t].predict(x[None])[0] for x, t in zip(feats[te], task[te],
                                                                          strict=True)])
            scores.append(1 - np.sum((yv[te] - pred) ** 2) / np.sum((yv[te] - yv[te].mean()) ** 2))
        hand.append(np.mean(scores))
    np.testing.assert_allclose(grid.cv_results_["mean_test_score"], hand, rtol=1e-9)
    # cross_val_score sees the task column too
    cvs = cross_val_score(est.set_params(penalties__0__alpha=0.3), X, y, cv=folds)
    np.testing.assert_allclose(cvs.mean(), hand[1], rtol=1e-9)


def test_pipeline_with_scaler(rng):
    X, Y = _shared(rng)
    pipe = make_pipeline(StandardScaler(), MultiTaskRegressor(penalties=[mc.Ridge(alpha=0.2)]))
    pipe.fit(X, Y)
    Z = StandardScaler().fit_transform(X)
    ref = Ridge(alpha=X.shape[0] * 0.2).fit(Z, Y)
    np.testing.assert_allclose(pipe.predict(X), ref.predict(Z), rtol=1e-9)


def test_dataframe_labels_reach_the_solution(rng):
    X, Y = _shared(rng)
    Xf = pd.DataFrame(X, columns=["a", "b", "c", "d", "e"])
    Yf = pd.DataFrame(Y, columns=["t1", "t2", "t3"])
    est = MultiTaskRegressor(penalties=[mc.Ridge(alpha=0.3)]).fit(Xf, Yf)
    frame = est.solution_.to_frame()
    assert list(frame.columns) == ["t1", "t2", "t3"] and list(est.tasks_) == ["t1", "t2", "t3"]
    assert list(frame.index) == ["a", "b", "c", "d", "e", "intercept"]
    ref = Ridge(alpha=X.shape[0] * 0.3).fit(X, Y)
    np.testing.assert_allclose(frame.loc[["a", "b", "c", "d", "e"]].to_numpy(), ref.coef_.T,
                               rtol=1e-9, atol=1e-12)


def test_the_sklearn_page_runs_as_written(monkeypatch):
    """Every code block of docs/sklearn.md, in order, from the repository root."""
    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "sklearn.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 5  # the signature above them is a text block
    monkeypatch.chdir(root)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/sklearn.md", "exec"), namespace)  # noqa: S102
    grid = namespace["grid"]
    assert list(grid.best_estimator_.tasks_) == ["Ashford", "Bramley", "Crofton", "Dunmore"]
    assert namespace["est"].coef_.shape == (4, 6)
    assert list(namespace["sol"].to_frame().index) == ["hours", "prior", "absences", "intercept"]


def test_fit_borrows_the_design_and_keeps_nothing_of_it(rng):
    # the shared design is not copied for the fit; editing it afterwards changes neither
    # the coefficients nor the certificate's distance bound √(2·gap/μ), μ = λ_min(X̃ᵀX̃)/n + α
    X, Y = _shared(rng, n=80)
    alpha = 0.2
    ref = Ridge(alpha=80 * alpha).fit(X, Y)
    Xc = X - X.mean(axis=0)
    mu = np.linalg.eigvalsh(Xc.T @ Xc)[0] / 80 + alpha
    est = MultiTaskRegressor(penalties=[mc.Ridge(alpha=alpha)]).fit(X, Y)
    assert X.flags.writeable and Y.flags.writeable
    X *= 10.0
    Y[:] = 0.0
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-9, atol=1e-12)
    cert = est.certificate_
    assert cert.distance_bound == pytest.approx(np.sqrt(2 * cert.gap / mu), rel=1e-9)
