"""The code in docs/getting_started.md, docs/regularizer.md ("Writing your own regularizer"),
docs/relations.md, docs/structured.md, docs/validation.md, the README's ten lines and the
public docstrings' examples run as written."""

from __future__ import annotations

import doctest
import importlib
import pathlib
import re
import warnings

import numpy as np
import pytest
from reference import quadratic_optimum

import mtlcvx as mc

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "regularizer.md"


def _run_page(doc: pathlib.Path, n_blocks: int, run: int | None = None) -> dict:
    """Run a page's first ``run`` Python blocks (all by default) in turn in one namespace,
    as a reader pasting them would."""
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == n_blocks
    namespace: dict = {}
    for block in blocks[:run]:
        exec(compile(block, str(doc), "exec"), namespace)  # noqa: S102
    return namespace


def test_your_own_regularizer_examples_run(capsys):
    _run_page(DOC, 4)
    out = capsys.readouterr().out
    assert "fista optimal dual-norm scaling per task (rung 1)" in out
    assert "the dual_norm oracle disagrees with the expression" in out
    assert "estimator True (3, 6)" in out
    assert "polished True" in out  # the support oracle's restricted solution was returned


def test_readme_ten_lines_run(tmp_path, monkeypatch, capsys):
    readme = DOC.parents[1] / "README.md"
    block = re.search(r"## Ten lines\n\n```python\n(.*?)```", readme.read_text(encoding="utf-8"),
                      flags=re.S).group(1)
    assert len(block.strip().splitlines()) <= 11
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, str(readme), "exec"), namespace)  # noqa: S102
    assert "status optimal" in capsys.readouterr().out
    assert np.array_equal(mc.load(tmp_path / "run.npz").W, namespace["sol"].W)


def test_getting_started_runs(capsys):
    pytest.importorskip("ecos")
    with warnings.catch_warnings():  # the page says ECOS usually warns
        warnings.simplefilter("ignore", mc.ConvergenceWarning)
        ns = _run_page(DOC.parent / "getting_started.md", 2)
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[-3:]}
    assert rows["fista"][0] == rows["scs"][0] == "optimal" == ns["sol"].status
    assert rows["ecos"][0] in ("optimal", "inaccurate")
    for name in ("fista", "scs", "ecos"):  # every backend on Clarabel's objective, as it says
        assert float(rows[name][1]) <= 1e-8


def test_relations_examples_run():
    pytest.importorskip("matplotlib")
    # not the third block: its k_step="sdp" matrix steps are ~9 s of CVXPY SDP solves
    ns = _run_page(DOC.parent / "relations.md", 4, run=3)
    assert ns["res"].status == "optimal"
    # the clustered-MTL W, scored as the reduced problem with the dual bound re-derived
    # from the dual point alone, as the page says
    cert = mc.certify(ns["reduced"], ns["W_mine"], dual_lower=ns["lower"])
    assert cert.relative_gap <= 1e-8


def test_structured_examples_run():
    ns = _run_page(DOC.parent / "structured.md", 2)
    sol = ns["sol"]
    assert sol.backend == "fista" and sol.status == "optimal"  # as the comment says
    np.testing.assert_allclose(sol.parts["L"] + sol.parts["S"], sol.W, rtol=0, atol=1e-12)
    assert ns["prob"].penalties[1].alpha == ns["rho2"]  # the CFGLasso block built its problem


def test_validation_examples_run():
    pytest.importorskip("matplotlib")
    ns = _run_page(DOC.parent / "validation.md", 2)
    data, prob = ns["data"], ns["prob"]
    A = np.diag(np.ones(4), 1) + np.diag(np.ones(4), -1)  # the chain 0-1-2-3-4, by hand
    _, _, F_star = quadratic_optimum(data.X, data.y, prob.loss_weights(),
                                     0.1 * (np.diag(A.sum(axis=1)) - A))
    cert = ns["cert"]
    assert cert.objective - F_star <= cert.gap <= 1e-8 * cert.objective  # a bound, and tight
    assert abs(ns["report"].certificate.objective - F_star) <= 1e-8 * F_star  # fista's final W


PACKAGE = DOC.parents[1] / "mtlcvx"
WITH_EXAMPLES = sorted(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
                       for path in PACKAGE.rglob("*.py")
                       if ">>>" in path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("module", WITH_EXAMPLES)
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that save files write here
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
