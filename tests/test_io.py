"""Saved results: one .npz per result, read back bit for bit, tampered files refused."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import warnings
import zipfile

import numpy as np
import pytest

import mtlcvx as mc

N_TASKS, N_FEATURES = 4, 6


@pytest.fixture(scope="module")
def data():
    return mc.datasets.make_related_tasks(n_tasks=N_TASKS, n_features=N_FEATURES,
                                          n_samples=[30, 25, 40, 35], random_state=0)


def _problem(data, **kwargs):
    K = mc.relations.laplacian(mc.relations.chain(N_TASKS))
    return mc.Problem(data, penalties=[mc.TaskRelation(K, alpha=0.1), mc.L21(alpha=0.01)],
                      **kwargs)


@pytest.fixture(scope="module")
def results(data):
    prob = _problem(data, fit_intercept=True)
    sol = prob.solve(backend="fista", tol=1e-10)
    sol.info["extras"] = {"pair": (1, 2.5), 3: "int key", "$dollar": None,
                          "floats": [np.nan, -np.inf, 1 / 3], "scalar": np.int32(7)}
    relation = mc.learn_relation(mc.Problem(data), "task_covariance", 0.1)
    path = mc.regularization_path(prob, penalty=1, n_alphas=4)
    cv = mc.cross_validate(prob, [0.1, 0.01], penalty=1, cv=2, random_state=0)
    return {"solution": sol, "relation": relation, "path": path, "cv": cv}


def _same(a, b, where):
    """Equal values of equal types; arrays equal in dtype, shape and every bit."""
    assert type(a) is type(b), where
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert a.tobytes() == b.tobytes(), where
    elif isinstance(a, float):
        assert a == b or (np.isnan(a) and np.isnan(b)), where
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _same(a[key], b[key], f"{where}[{key!r}]")
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    else:
        assert a == b, where


@pytest.mark.parametrize("which", ["solution", "relation", "path", "cv"])
def test_round_trip_is_exact(results, which, tmp_path):
    result = results[which]
    file = result.save(tmp_path / "run.npz")
    assert file == tmp_path / "run.npz"
    again = mc.load(file)
    assert type(again) is type(result)
    fields = [f.name for f in dataclasses.fields(result) if f.name not in ("_source", "_data")]
    for name in fields:
        _same(getattr(result, name), getattr(again, name), name)
    # independent of mc.load: every member reads with NumPy's pickle-free loader
    with np.load(file, allow_pickle=False) as raw:
        assert all(raw[name].dtype != object for name in raw.files)
        meta = json.loads(raw["__meta__"].tobytes())
        assert meta["schema"] == 1 and meta["result"]["$type"] == type(result).__name__
        w_key = meta["result"]["fields"]["W" if which != "cv" else "scores"]["$array"]
        assert np.array_equal(raw[w_key], result.W if which != "cv" else result.scores)


def test_loaded_certificates_are_certificates(results, tmp_path):
    sol = mc.load(results["solution"].save(tmp_path / "s.npz"))
    assert isinstance(sol.certificate, mc.Certificate)
    assert sol.certificate == results["solution"].certificate
    path = mc.load(results["path"].save(tmp_path / "p.npz"))
    assert all(isinstance(c, mc.Certificate) for c in path.certificates)
    assert path.to_frame()["gap"].tolist() == results["path"].to_frame()["gap"].tolist()


def test_loaded_cv_result_scores_but_cannot_refit(results, tmp_path):
    cv = mc.load(results["cv"].save(tmp_path / "cv.npz"))
    assert cv.best_alpha == results["cv"].best_alpha
    assert np.array_equal(cv.mean_score, results["cv"].mean_score)
    with pytest.raises(mc.MTLError, match="holds no problem"):
        cv.refit()


def test_unsavable_field_is_named(results, tmp_path):
    sol = dataclasses.replace(results["solution"], info={"callback": print})
    with pytest.raises(mc.ArgumentError, match=r"Solution.info\['callback'\]"):
        sol.save(tmp_path / "x.npz")
    sol = dataclasses.replace(results["solution"], parts={"P": np.array([None, 1])})
    with pytest.raises(mc.ArgumentError, match="object array"):
        sol.save(tmp_path / "x.npz")
    assert not list(tmp_path.iterdir())                  # nothing half-written


# ------------------------------------------------------------------------- tampering
def _rewrite(src, dst, *, meta=None, drop=(), add=None):
    """Copy archive ``src`` to ``dst`` with its JSON replaced, members dropped or added."""
    with np.load(src, allow_pickle=False) as raw:
        members = {name: raw[name] for name in raw.files if name not in drop}
    if meta is not None:
        members["__meta__"] = np.frombuffer(meta.encode(), dtype=np.uint8)
    members.update(add or {})
    np.savez(dst, **members)                              # allow_pickle=True by default
    return dst


def _meta(file):
    with np.load(file, allow_pickle=False) as raw:
        return raw["__meta__"].tobytes().decode()


@pytest.fixture
def saved(results, tmp_path):
    return results["solution"].save(tmp_path / "good.npz")


@pytest.mark.parametrize("tamper, message", [
    (lambda f, m: _rewrite(f, f, meta=m[:-7]), "metadata is not valid JSON"),
    (lambda f, m: _rewrite(f, f, meta=m.replace('"schema": 1', '"schema": 2')),
     "schema version 2.*newer mtlcvx"),
    (lambda f, m: _rewrite(f, f, meta=m.replace('"schema": 1', '"schema": "1"')),
     "schema version '1'"),
    (lambda f, m: _rewrite(f, f, drop=("a0",)), "array 'a0', which is missing"),
    (lambda f, m: _rewrite(f, f, add={"a0": np.array([{"x": 1}], dtype=object)}),
     "member 'a0' is an object array"),
    (lambda f, m: _rewrite(f, f, add={"extra": np.zeros(3)}), "'extra' are not referenced"),
    (lambda f, m: _rewrite(f, f, drop=("__meta__",)), "no '__meta__' member"),
    (lambda f, m: _rewrite(f, f, meta=m.replace('"Certificate"', '"os.system"')),
     "unknown type 'os.system'"),
    (lambda f, m: _rewrite(f, f, meta=m.replace('"backend"', '"backend_"')),
     "missing backend; unknown backend_"),
    (lambda f, m: _rewrite(f, f, meta=m.replace('"objective": 0', '"objective": NaN')),
     "NaN is not JSON"),
    (lambda f, m: f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2]),
     "not a .npz archive"),
    (lambda f, m: np.save(f.with_suffix(""), np.zeros(3)) or f.with_suffix(".npy").rename(f),
     "holds a single .npy array"),
    (lambda f, m: f.unlink(), "no such file"),
])
def test_tampered_file_is_refused(saved, tamper, message):
    tamper(saved, _meta(saved))
    with pytest.raises(mc.ResultFileError, match=message) as err:
        mc.load(saved)
    assert str(saved) in str(err.value)


@pytest.mark.parametrize("offset", [0.2, 0.5, 0.8])
def test_corrupted_member_is_refused(saved, offset):
    raw = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as zf:
        info = zf.getinfo("a0.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start + int(info.compress_size * offset)] ^= 0xFF     # flip one byte of W's data
    saved.write_bytes(bytes(raw))
    with pytest.raises(mc.ResultFileError, match="member 'a0' is (truncated or )?corrupt"):
        mc.load(saved)


# ------------------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("backend, options", [
    ("clarabel", {}), ("direct", {}),
    # fista certifies on a schedule of iteration counts alone: it stops where it stopped
    ("fista", {}),
])
def test_same_solve_twice_agrees_to_1e_12(data, backend, options):
    K = mc.relations.laplacian(mc.relations.chain(N_TASKS))
    second = mc.L21(alpha=0.01) if backend != "direct" else mc.Ridge(alpha=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.ConvergenceWarning)
        first, again = (mc.Problem(data, penalties=[mc.TaskRelation(K, alpha=0.1), second])
                        .solve(backend=backend, **options) for _ in range(2))
    assert first.iterations == again.iterations
    assert np.max(np.abs(first.W - again.W)) <= 1e-12
    assert abs(first.objective - again.objective) <= 1e-12 * abs(first.objective)

def test_saving_page_runs_as_written(tmp_path, monkeypatch, capsys):
    page = pathlib.Path(__file__).resolve().parents[1] / "docs" / "saving.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, str(page), "exec"), {})  # noqa: S102
    out = capsys.readouterr().out
    assert "mtlcvx solution (clarabel): status optimal" in out
    assert out.rstrip().endswith("Solution optimal")
