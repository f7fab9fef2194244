"""The code in docs/regularizer.md ("Writing your own regularizer"), the README's ten lines and
the public docstrings' examples run as written."""

from __future__ import annotations

import doctest
import importlib
import pathlib
import re

import numpy as np
import pytest

import mtlcvx as mc

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "regularizer.md"


def test_your_own_regularizer_examples_run(capsys):
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 4
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102
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


PACKAGE = DOC.parents[1] / "mtlcvx"
WITH_EXAMPLES = sorted(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
                       for path in PACKAGE.rglob("*.py")
                       if ">>>" in path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("module", WITH_EXAMPLES)
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that save files write here
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
