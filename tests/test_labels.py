"""Feature names and task labels: from a DataFrame, through a solve, back into a DataFrame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

import mtlcvx as mc


@pytest.fixture
def frame(rng):
    rows = []
    for label, n in (("zeta", 12), ("alpha", 20), ("mu", 16)):
        X = rng.normal(size=(n, 3))
        rows.append(pd.DataFrame({"school": label, "hours": X[:, 0], "size": X[:, 1],
                                  "age": X[:, 2],
                                  "score": X @ rng.normal(size=3) + rng.normal(size=n)}))
    return pd.concat(rows, ignore_index=True).sample(frac=1.0, random_state=3)


def test_from_frame_keeps_labels_through_solve(frame):
    data = mc.MultiTaskData.from_frame(frame, task="school", target="score",
                                       features=["age", "hours"])
    assert data.tasks == ["alpha", "mu", "zeta"] and data.feature_names == ["age", "hours"]
    sol = mc.Problem(data, penalties=[mc.Ridge(alpha=0.2)], fit_intercept=True).solve()
    out = sol.to_frame()
    assert list(out.columns) == ["alpha", "mu", "zeta"]
    assert "  tasks: 'alpha', 'mu', 'zeta'\n  features: 'age', 'hours'\n" in sol.summary()
    assert list(out.index) == ["age", "hours", "intercept"]
    for label in data.tasks:  # the values: scikit-learn's Ridge on that task alone
        rows = frame[frame.school == label]
        ref = Ridge(alpha=len(rows) * 0.2).fit(rows[["age", "hours"]], rows.score)
        np.testing.assert_allclose(out.loc[["age", "hours"], label], ref.coef_, rtol=1e-9)
        assert out.loc["intercept", label] == pytest.approx(ref.intercept_, rel=1e-9)


def test_from_frame_default_features_are_the_other_columns(frame):
    data = mc.MultiTaskData.from_frame(frame, task="school", target="score")
    assert data.feature_names == ["hours", "size", "age"]
    np.testing.assert_array_equal(data.X[0], frame[frame.school == "alpha"][
        ["hours", "size", "age"]].to_numpy())


def test_unlabelled_data_keep_integer_labels(rng):
    data = mc.MultiTaskData.shared(rng.normal(size=(10, 2)), rng.normal(size=(10, 3)))
    sol = mc.Problem(data, penalties=[mc.Ridge(alpha=1.0)]).solve()
    out = sol.to_frame()
    assert list(out.columns) == [0, 1, 2] and list(out.index) == [0, 1]
    assert "tasks:" not in sol.summary() and "features:" not in sol.summary()


@pytest.mark.parametrize("build, match", [
    (lambda f: f.assign(school=f.school.astype(object).where(f.index != f.index[0], 5)),
     "task mixes label types"),
    (lambda f: f.rename(columns={"age": 3}), "df.columns mixes label types"),
])
def test_mixed_type_labels_refused(frame, build, match):
    with pytest.raises(mc.DataError, match=match):
        mc.MultiTaskData.from_frame(build(frame), task="school", target="score")


def test_bad_labels_named(rng, frame):
    with pytest.raises(mc.DataError, match="no column 'grade'"):
        mc.MultiTaskData.from_frame(frame, task="school", target="grade")
    with pytest.raises(mc.DataError, match="must be a pandas DataFrame"):
        mc.MultiTaskData.from_frame(frame.to_numpy(), task=0, target=1)
    X = rng.normal(size=(5, 2))
    with pytest.raises(mc.DataError, match="duplicate labels: 'a'"):
        mc.MultiTaskData.shared(X, rng.normal(size=(5, 2)), tasks=["a", "a"])
    with pytest.raises(mc.DataError, match="feature_names has 3 labels for 2 features"):
        mc.MultiTaskData.shared(X, rng.normal(size=(5, 2)), feature_names=["u", "v", "w"])
    with pytest.raises(mc.DataError, match="tasks mixes label types"):
        mc.MultiTaskData([X, X], [X[:, 0], X[:, 1]], tasks=[1, "b"])
