"""The code in docs/certificates.md ("Your own regularizer") runs as written."""

from __future__ import annotations

import pathlib
import re

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "certificates.md"


def test_your_own_regularizer_examples_run(capsys):
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Your own regularizer"):]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert "fista optimal dual-norm scaling per task (rung 1)" in out
    assert "the dual_norm oracle disagrees with the expression" in out
