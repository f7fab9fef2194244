"""``mtlcvx solve`` / ``validate`` from spec files, ``demo`` limits, and every CLI error path.

Numbers are checked against independent solutions: a CVXPY model written here, and
scikit-learn's Ridge per task (mtlcvx's ``Ridge(alpha=a)`` with the mean loss is
``Ridge(alpha=n_t·a)`` on task t).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
import scipy.io
from sklearn.linear_model import Ridge

from mtlcvx.backends import BACKENDS
from mtlcvx.cli import main
from mtlcvx.spec import load_spec

SPECS = Path(__file__).resolve().parent.parent / "examples" / "specs"


def _run(argv, capsys):
    code = main([*argv, "--no-progress"] if argv[0] in ("solve", "validate", "demo") else argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_example_spec_matches_an_independent_cvxpy_model(tmp_path, capsys):
    code, out, err = _run(["solve", str(SPECS / "schools.toml"), "--out", str(tmp_path)], capsys)
    assert code == 0 and err == "" and "status optimal" in out
    df = pd.read_csv(SPECS / "schools.csv")
    feats = ["hours", "prior", "absences", "commute"]
    schools = sorted(df.school.unique())
    W, b = cp.Variable((4, len(schools))), cp.Variable(len(schools))
    loss = sum(cp.sum_squares(df[df.school == s][feats].to_numpy() @ W[:, t] + b[t]
                              - df[df.school == s].score.to_numpy()) / (2 * np.sum(df.school == s))
               for t, s in enumerate(schools))
    mean = cp.sum(W, axis=1, keepdims=True) / len(schools)
    objective = loss + 0.5 / 2 * cp.sum_squares(W - mean) + 1.5 * cp.sum(cp.norm(W, 2, axis=1))
    ref = cp.Problem(cp.Minimize(objective))
    ref.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    saved = np.load(tmp_path / "W.npz")
    # a 1e-11 relative gap bounds ‖W − W*‖ by ~1e-4 here (the loss is only mildly curved)
    np.testing.assert_allclose(saved["W"], W.value, atol=2e-5)
    np.testing.assert_allclose(saved["intercept"], b.value, atol=2e-5)
    assert saved["tasks"].tolist() == schools and saved["feature_names"].tolist() == feats
    csv = pd.read_csv(tmp_path / "W.csv", index_col=0)
    assert list(csv.columns) == schools and list(csv.index) == [*feats, "intercept"]
    np.testing.assert_array_equal(csv.loc[feats].to_numpy(), saved["W"])  # repr round-trips
    assert np.abs(W.value[3]).max() < 1e-6  # L21 drops the irrelevant "commute" row
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "optimal" and summary["backend"] == "clarabel"
    assert summary["objective"] == pytest.approx(ref.value, rel=1e-8)
    assert summary["certificate"]["relative_gap"] <= 1e-8


def _stacked(rng, sizes=(12, 20, 9), d=3):
    X = rng.normal(size=(sum(sizes), d))
    task = np.repeat(np.array([7, 3, 5]), sizes)
    y = X @ rng.normal(size=d) + rng.normal(size=len(task)) + task
    return X, y, task


def _ridge_reference(X, y, task, alpha):
    return {t: Ridge(alpha=np.sum(task == t) * alpha).fit(X[task == t], y[task == t])
            for t in np.unique(task)}


def _spec(tmp_path, text):
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return str(path)


RIDGE = '\n[[penalty]]\nname = "Ridge"\nalpha = 0.2\n'


@pytest.mark.parametrize("fmt", ["npz", "mat"])
def test_stacked_arrays_from_npz_and_mat(tmp_path, capsys, rng, fmt):
    X, y, task = _stacked(rng)
    arrays = {"X": X, "y": y, "task": task, "feature_names": np.array(["a", "b", "c"])}
    if fmt == "npz":
        np.savez(tmp_path / "d.npz", **arrays)
    else:
        scipy.io.savemat(tmp_path / "d.mat", arrays)
    spec = _spec(tmp_path, f'[data]\npath = "d.{fmt}"\n' + RIDGE)
    code, _, _ = _run(["solve", spec, "--out", str(tmp_path / "out")], capsys)
    assert code == 0
    saved = np.load(tmp_path / "out" / "W.npz")
    refs = _ridge_reference(X, y, task, 0.2)
    assert saved["tasks"].tolist() == [3, 5, 7] and saved["feature_names"].tolist() == list("abc")
    for t, label in enumerate([3, 5, 7]):
        np.testing.assert_allclose(saved["W"][:, t], refs[label].coef_, rtol=1e-9)
        np.testing.assert_allclose(saved["intercept"][t], refs[label].intercept_, rtol=1e-9)


def test_malsar_cell_arrays_and_shared_design_csv(tmp_path, capsys, rng):
    X, y, task = _stacked(rng)
    cells = np.empty((1, 3), dtype=object)
    ycells = np.empty((1, 3), dtype=object)
    for t, label in enumerate([7, 3, 5]):  # MALSAR keeps the file order
        cells[0, t], ycells[0, t] = X[task == label], y[task == label][:, None]
    scipy.io.savemat(tmp_path / "m.mat", {"X": cells, "Y": ycells})
    spec = _spec(tmp_path, '[data]\npath = "m.mat"\n[loss]\nfit_intercept = false\n' + RIDGE)
    assert _run(["solve", spec, "--out", str(tmp_path / "o1")], capsys)[0] == 0
    W = np.load(tmp_path / "o1" / "W.npz")["W"]
    for t, label in enumerate([7, 3, 5]):
        ref = Ridge(alpha=np.sum(task == label) * 0.2, fit_intercept=False)
        np.testing.assert_allclose(W[:, t], ref.fit(X[task == label], y[task == label]).coef_,
                                   rtol=1e-9)
    Xs, Ys = rng.normal(size=(30, 2)), rng.normal(size=(30, 2))
    pd.DataFrame({"u": Xs[:, 0], "v": Xs[:, 1], "p": Ys[:, 0], "q": Ys[:, 1]}).to_csv(
        tmp_path / "s.csv", index=False)
    spec = _spec(tmp_path, '[data]\npath = "s.csv"\ntarget = ["p", "q"]\n' + RIDGE)
    assert _run(["solve", spec, "--out", str(tmp_path / "o2")], capsys)[0] == 0
    csv = pd.read_csv(tmp_path / "o2" / "W.csv", index_col=0)
    ref = Ridge(alpha=30 * 0.2).fit(Xs, Ys)
    np.testing.assert_allclose(csv.loc[["u", "v"], ["p", "q"]].to_numpy(), ref.coef_.T, rtol=1e-9)


def test_matrix_parameters_from_relation_file_and_list(tmp_path, capsys, rng):
    """K = I − 11ᵀ/T given three ways gives MeanRegularized's optimum."""
    X, y, task = _stacked(rng)
    np.savez(tmp_path / "d.npz", X=X, y=y, task=task)
    M = np.eye(3) - 1 / 3
    np.save(tmp_path / "K.npy", M)
    objectives = []
    for value in ['{relation = "mean_regularizer"}', '"K.npy"', str(M.tolist())]:
        spec = _spec(tmp_path, f'[data]\npath = "d.npz"\n[[penalty]]\nname = "TaskRelation"\n'
                               f'alpha = 2.0\nK = {value}\n' + RIDGE)
        assert _run(["solve", spec, "--out", str(tmp_path / "o")], capsys)[0] == 0
        objectives.append(json.loads((tmp_path / "o" / "summary.json").read_text())["objective"])
    spec = _spec(tmp_path, '[data]\npath = "d.npz"\n[[penalty]]\nname = "MeanRegularized"\n'
                           'alpha = 2.0\n' + RIDGE + '[solve]\nbackend = "clarabel"\n')
    assert _run(["solve", spec, "--out", str(tmp_path / "o")], capsys)[0] == 0
    reference = json.loads((tmp_path / "o" / "summary.json").read_text())["objective"]
    np.testing.assert_allclose(objectives, reference, rtol=1e-8)


def test_uncertified_solve_exits_1_with_one_warning_line_and_refine_certifies(tmp_path, capsys):
    base = (f'[data]\npath = "{SPECS / "schools.csv"}"\ntask = "school"\ntarget = "score"\n'
            '[[penalty]]\nname = "L21"\nalpha = 1.5\n[solve]\nbackend = "scs"\nmax_iter = 5\n')
    code, out, err = _run(["solve", _spec(tmp_path, base)], capsys)
    assert code == 1 and "status inaccurate" in out
    assert err.count("\n") == 1 and err.startswith("mtlcvx solve: warning: backend 'scs' returned")
    code, out, err = _run(["solve", _spec(tmp_path, base + "refine = true\n")], capsys)
    assert code == 0 and "status optimal" in out and err == ""


def test_string_parameters_pass_through(tmp_path, capsys, rng):
    """A string that names no matrix file is a plain value (LearnedClusters' side)."""
    X, y, task = _stacked(rng)
    np.savez(tmp_path / "d.npz", X=X, y=y, task=task)
    spec = _spec(tmp_path, '[data]\npath = "d.npz"\n[[penalty]]\nname = "LearnedClusters"\n'
                           'alpha = 0.5\nk = 2\neta = 0.5\nside = "task"\n')
    loaded = load_spec(spec)
    assert loaded.problem.penalties[0].side == "task"


def test_validate_scores_iterates(tmp_path, capsys, rng):
    X, y, task = _stacked(rng)
    np.savez(tmp_path / "d.npz", X=X, y=y, task=task)
    spec = _spec(tmp_path, '[data]\npath = "d.npz"\n[loss]\nfit_intercept = false\n' + RIDGE)
    labels = [3, 5, 7]
    refs = {t: Ridge(alpha=np.sum(task == t) * 0.2, fit_intercept=False).fit(X[task == t],
                                                                            y[task == t])
            for t in labels}
    W_star = np.stack([refs[t].coef_ for t in labels], axis=1)

    def F(W):  # the objective, written out
        return sum(np.sum((X[task == t] @ W[:, i] - y[task == t]) ** 2) / (2 * np.sum(task == t))
                   for i, t in enumerate(labels)) + 0.1 * np.sum(W ** 2)

    iterates = np.stack([W_star + 0.5 ** k * np.ones_like(W_star) for k in range(6)])
    np.savez(tmp_path / "it.npz", W=iterates)
    code, out, _ = _run(["validate", spec, str(tmp_path / "it.npz"), "--out", str(tmp_path)],
                        capsys)
    assert code == 0 and "final suboptimality" in out
    report = json.loads((tmp_path / "validation.json").read_text())
    expected = [(F(W) - F(W_star)) / max(1.0, abs(F(W_star))) for W in iterates]
    np.testing.assert_allclose(report["suboptimality"], expected, rtol=1e-6, atol=1e-13)


def test_demo_runs_chosen_backends(capsys):
    code, out, _ = _run(["demo", "--tasks", "5", "--features", "4", "--backends",
                         "clarabel,direct", "--time-limit", "60"], capsys)
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["clarabel"],
                                                                             ["direct"])]
    assert [r[0] for r in rows] == ["clarabel", "direct"]
    assert all(r[1] == "optimal" and float(r[3]) <= 1e-7 for r in rows)


def test_demo_skips_a_backend_over_its_time_limit(capsys, monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(30)

    monkeypatch.setattr(BACKENDS["scs"], "solve", hang)  # the forked child inherits it
    start = time.perf_counter()
    code, out, _ = _run(["demo", "--tasks", "4", "--features", "3", "--backends", "scs",
                         "--time-limit", "1"], capsys)
    assert code == 0 and time.perf_counter() - start < 15
    assert "scs        skipped (over the 1 s time limit)" in out


BAD_SPECS = {
    "missing data file": ('[data]\npath = "nope.csv"\n', "data file", "does not exist"),
    "bad toml": ('[data\npath = 1', "is not valid TOML", ""),
    "unknown section": ('[dataa]\npath = "d.npz"\n', "unknown section [dataa]", "[data]"),
    "unknown key": ('[data]\npath = "d.npz"\n[solve]\nbackends = "scs"\n',
                    "unknown key 'backends' in [solve]", "backend"),
    "no data": ('[solve]\ntol = 1e-6\n', "[data] path", "required"),
    "bad extension": ('[data]\npath = "spec.toml"\n', "must end in .csv, .npz or .mat", ""),
    "unknown penalty": ('[data]\npath = "d.npz"\n[[penalty]]\nname = "L3"\nalpha = 1.0\n',
                        "unknown penalty 'L3'", "L21"),
    "unknown parameter": ('[data]\npath = "d.npz"\n[[penalty]]\nname = "L21"\nbeta = 1.0\n',
                          "L21 has no parameter 'beta'", "alpha"),
    "missing parameter": ('[data]\npath = "d.npz"\n[[penalty]]\nname = "TaskRelation"\n',
                          "TaskRelation", "K"),
    "negative alpha": ('[data]\npath = "d.npz"\n[[penalty]]\nname = "L21"\nalpha = -1.0\n',
                       "alpha", "≥ 0"),
    "wrong shape": ('[data]\npath = "d.npz"\n[[penalty]]\nname = "TaskRelation"\n'
                    'K = [[1.0, 0.0], [0.0, 1.0]]\n', "K has shape (2, 2)", "(3, 3)"),
    "incompatible backend": ('[data]\npath = "d.npz"\n[[penalty]]\nname = "L21"\nalpha = 0.1\n'
                             '[solve]\nbackend = "osqp"\n', "'soc' cone", "clarabel"),
    "unknown backend": ('[data]\npath = "d.npz"\n[solve]\nbackend = "gurobi"\n',
                        "unknown backend 'gurobi'", "clarabel"),
    "bad relation": ('[data]\npath = "d.npz"\n[[penalty]]\nname = "TaskRelation"\n'
                     'K = {relation = "ring"}\n', "relation", "chain"),
    "missing matrix file": ('[data]\npath = "d.npz"\n[[penalty]]\nname = "TaskRelation"\n'
                            'K = "K.npy"\n', "K file", "does not exist"),
    "csv without task": ('[data]\npath = "d.csv"\ntarget = "y"\n', "task", "target"),
    "csv missing column": ('[data]\npath = "d.csv"\ntask = "school"\ntarget = "score"\n',
                           "no column 'school'", ""),
    "npz without y": ('[data]\npath = "x.npz"\n', "needs 'y' and 'task'", "'Y'"),
    "bad tol": ('[data]\npath = "d.npz"\n[solve]\ntol = "tight"\n', "tol", "positive"),
    "path not a string": ('[data]\npath = 1\n', "[data] path", "required"),
    "name not a string": ('[data]\npath = "d.npz"\n[[penalty]]\nname = ["L1"]\n', "name ="),
    "ragged matrix": ('[data]\npath = "d.npz"\n[[penalty]]\nname = "TaskRelation"\n'
                      'K = [[1.0], [0.0, 1.0]]\n', "K must be a list of equal-length lists"),
    "refine not a flag": ('[data]\npath = "d.npz"\n[solve]\nrefine = "yes"\n',
                          "[solve] refine must be true or false"),
    "features not a list": ('[data]\npath = "d.csv"\ntask = "a"\ntarget = "y"\n'
                            'features = "a"\n', "features must be a list"),
    "malformed csv": ('[data]\npath = "bad.csv"\ntask = "a"\ntarget = "y"\n',
                      "cannot read bad.csv as a .csv file"),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_bad_spec_exits_2_with_one_line(tmp_path, capsys, rng, case):
    X, y, task = _stacked(rng)
    np.savez(tmp_path / "d.npz", X=X, y=y, task=task)
    np.savez(tmp_path / "x.npz", X=X)
    pd.DataFrame({"a": X[:, 0], "y": y}).to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "bad.csv").write_bytes(b"a,y\n1,2\n\xff\xfe,3,4,5\n")
    text, *fragments = BAD_SPECS[case]
    code, out, err = _run(["solve", _spec(tmp_path, text)], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("mtlcvx solve: error: "), err
    for fragment in fragments:
        assert fragment in err, err


def test_bad_invocations_exit_2_with_one_line(tmp_path, capsys, rng):
    X, y, task = _stacked(rng)
    np.savez(tmp_path / "d.npz", X=X, y=y, task=task)
    spec = _spec(tmp_path, '[data]\npath = "d.npz"\n' + RIDGE)
    np.savez(tmp_path / "noW.npz", V=np.zeros((3, 3)))
    np.savez(tmp_path / "shape.npz", W=np.zeros((2, 4, 3)))
    cases = [
        (["solve", str(tmp_path / "none.toml")], "spec file", "does not exist"),
        (["validate", spec, str(tmp_path / "none.npz")], "iterates file", "does not exist"),
        (["validate", spec, str(tmp_path / "noW.npz")], "no array 'W'", "np.savez"),
        (["validate", spec, str(tmp_path / "shape.npz")], "(2, 4, 3)", "(k, 3, 3)"),
        (["demo", "--backends", "clarabel,cplex"], "unknown backend 'cplex'", "direct"),
        (["demo", "--time-limit", "0"], "--time-limit", "positive"),
        (["solve", spec, "--out", str(tmp_path / "d.npz" / "sub")], "d.npz"),
    ]
    for argv, *fragments in cases:
        code, out, err = _run(argv, capsys)
        assert code == 2 and err.count("\n") == 1, (argv, err)
        assert err.startswith(f"mtlcvx {argv[0]}: error: "), err
        for fragment in fragments:
            assert fragment in err, err


def test_console_script_without_sklearn_prints_no_traceback(tmp_path):
    """One fresh interpreter (imports are slow): scikit-learn blocked, ``python -m mtlcvx``."""
    missing = tmp_path / "x.toml"
    code = ("import runpy, sys\n"
            "sys.modules['sklearn'] = None\n"
            "import mtlcvx\n"
            "try:\n    mtlcvx.MultiTaskRegressor\n"
            "except ImportError as err:\n    print(err)\n"
            f"sys.argv = ['mtlcvx', 'solve', {str(missing)!r}]\n"
            "runpy.run_module('mtlcvx', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "pip install 'mtlcvx[sklearn]'" in proc.stdout  # the core runs without it
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"mtlcvx solve: error: spec file '{missing}' does not exist"]


def test_the_cli_page_shows_the_example_spec_as_it_is():
    text = (SPECS.parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    shown = re.search(r"```toml\n(.*?)```", text, flags=re.S).group(1)
    body = (SPECS / "schools.toml").read_text(encoding="utf-8")
    assert body.endswith(shown)  # the file only adds its header comment
