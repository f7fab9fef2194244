"""The command line: `python -m mtlcvx demo` and `backends`."""

from __future__ import annotations

import re

import mtlcvx as mc
from mtlcvx.cli import main


def test_demo_every_backend_agrees_with_direct(capsys):
    assert main(["demo", "--tasks", "6", "--features", "5"]) == 0
    out = capsys.readouterr().out
    rows = {m.group(1): m for m in re.finditer(
        r"^(\w+)\s+(optimal|inaccurate)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$", out, re.M)}
    installed = [n for n, info in mc.available_backends().items() if info.installed]
    assert set(rows) == set(installed)
    for name, m in rows.items():
        assert float(m.group(4)) <= 1e-6, name  # relative difference to "direct"


def test_backends_lists_cones(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^osqp\s+installed\s+nonneg, quadratic, zero$", out, re.M)
    assert re.search(r"^direct\s+installed\s+quadratic$", out, re.M)
