"""Imports point down: every mtlcvx module sits in a layer and imports only its own or lower ones.

Checked on the source (``ast``), module-level and deferred (in-function) imports alike;
imports under ``if TYPE_CHECKING:`` are for annotations only and are skipped.
"""

from __future__ import annotations

import ast
import functools
import pathlib
import subprocess
import sys

import mtlcvx

ROOT = pathlib.Path(mtlcvx.__file__).parent

#: Lowest first. A module may import modules of its own layer or below.
LAYERS = [
    ("shared numerics", ["mtlcvx.exceptions", "mtlcvx._optional", "mtlcvx._threads",
                         "mtlcvx._checks", "mtlcvx._linalg", "mtlcvx.penalties._prox",
                         "mtlcvx._io"]),
    ("data", ["mtlcvx.data"]),
    ("losses and relations", ["mtlcvx.losses", "mtlcvx.relations", "mtlcvx.coupling",
                              "mtlcvx.datasets"]),
    ("penalties", ["mtlcvx.penalties", "mtlcvx.penalties.*"]),
    ("oracles and compilation", ["mtlcvx.oracles", "mtlcvx.compile", "mtlcvx.solution"]),
    ("certificates", ["mtlcvx.certificates", "mtlcvx._quadratic_dual", "mtlcvx._rounding",
                      "mtlcvx._restricted"]),
    ("first-order methods", ["mtlcvx.first_order"]),
    ("backends", ["mtlcvx.backends", "mtlcvx.backends.*"]),
    ("the problem (hub)", ["mtlcvx.problem"]),
    ("tools on problems", ["mtlcvx.validation", "mtlcvx.path", "mtlcvx.relation_learning",
                           "mtlcvx.malsar", "mtlcvx.estimators", "mtlcvx.spec",
                           "mtlcvx.plotting"]),
    ("entry points", ["mtlcvx", "mtlcvx.cli", "mtlcvx.__main__"]),
]


def _layer(module: str) -> int | None:
    for level, (_, members) in enumerate(LAYERS):
        for pattern in members:
            if module == pattern or (pattern.endswith(".*")
                                     and module.startswith(pattern[:-1])):
                return level
    return None


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _imports(path: pathlib.Path) -> frozenset[str]:
    """mtlcvx modules imported by ``path``, outside ``if TYPE_CHECKING:`` blocks."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.startswith("mtlcvx"):
                    # `from . import x` imports the submodule x when there is one
                    for alias in child.names:
                        sub = f"{target}.{alias.name}"
                        found.add(sub if _exists(sub) else target)
            elif isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith("mtlcvx"))
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard(name)
    return frozenset(found)


@functools.cache
def _exists(module: str) -> bool:
    rel = pathlib.Path(*module.split(".")[1:])
    return (ROOT / rel).with_suffix(".py").exists() or (ROOT / rel / "__init__.py").exists()


def test_every_module_has_a_layer():
    missing = [_module_name(p) for p in ROOT.rglob("*.py") if _layer(_module_name(p)) is None]
    assert not missing, (f"put {missing} into a layer of tests/test_layers.py: the lowest one "
                         "holding everything it imports")


def test_imports_point_down():
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        name = _module_name(path)
        here = _layer(name)
        for target in sorted(_imports(path)):
            there = _layer(target)
            if there is not None and here is not None and there > here:
                upward.append(f"{name} ({LAYERS[here][0]}) imports {target} "
                              f"({LAYERS[there][0]})")
    assert not upward, "imports pointing up:\n" + "\n".join(upward)


def test_only_entry_points_import_the_cli():
    importers = [_module_name(p) for p in ROOT.rglob("*.py") if "mtlcvx.cli" in _imports(p)]
    assert importers == ["mtlcvx.__main__"]


def test_numpy_backends_never_import_cvxpy():
    """``import mtlcvx`` and the direct and fista solves leave CVXPY (0.5 s, 70 MB) unloaded;
    a conic solve loads it (checked in a fresh interpreter)."""
    code = """if True:
        import sys
        import numpy as np
        import mtlcvx as mc
        assert "cvxpy" not in sys.modules, "import mtlcvx"
        rng = np.random.default_rng(0)
        data = mc.MultiTaskData.shared(rng.standard_normal((30, 5)), rng.standard_normal((30, 4)))
        K = mc.relations.chain(4, sparse=True)
        quad = mc.Problem(data, mc.SquaredLoss("sum"), [mc.GraphLaplacian(K, 1.0), mc.Ridge(0.1)])
        assert quad.solve("direct").status == "optimal"
        assert mc.Problem(data, penalties=[mc.L21(0.1)]).solve("fista").status == "optimal"
        assert "cvxpy" not in sys.modules, "direct/fista solve"
        assert quad.solve("clarabel").status == "optimal"
        assert "cvxpy" in sys.modules
    """
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_import_leaves_scipy_linalg_and_sparse_unloaded():
    """``import mtlcvx`` reaches SciPy's submodules only through ``scipy``'s lazy attributes:
    ``scipy.linalg`` and ``scipy.sparse`` (about 30 MB and 0.15 s) load on first use."""
    code = """if True:
        import sys
        import mtlcvx
        loaded = sorted(m for m in ("scipy.linalg", "scipy.sparse") if m in sys.modules)
        assert not loaded, loaded
        mtlcvx.GraphLaplacian(mtlcvx.relations.chain(3), 1.0)  # dense: asks issparse
        assert "scipy.sparse" not in sys.modules, "a dense graph Laplacian"
        mtlcvx.GraphLaplacian(mtlcvx.relations.chain(3, sparse=True), 1.0)
        assert "scipy.sparse" in sys.modules
    """
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_factor_given_coupling_solves_with_numpy_alone():
    """Per-task designs with ``K = Z Zᵀ + c·I`` from its factor: the direct solve (Woodbury)
    and its certificate need NumPy alone (peak memory is that of a NumPy script); the
    solution matches the normal equations solved densely in the test."""
    code = """if True:
        import sys
        import numpy as np
        import mtlcvx as mc
        rng = np.random.default_rng(0)
        T, n, d = 600, 8, 3  # more than 512 tasks: the batched strong-convexity proof
        Xs, ys = rng.standard_normal((T, n, d)), rng.standard_normal((T, n))
        Z = rng.standard_normal((T, 2))
        prob = mc.Problem(mc.MultiTaskData(list(Xs), list(ys)), mc.SquaredLoss("sum"),
                          [mc.TaskRelation.from_factor(Z, ridge=0.1, alpha=2.0)])
        sol = prob.solve("direct", tol=1e-10)
        loaded = sorted(m for m in ("scipy.linalg", "scipy.sparse") if m in sys.modules)
        assert not loaded, loaded
        assert sol.status == "optimal" and sol.info["method"] == "woodbury", sol.info
        # (blkdiag(X_tᵀX_t) + 2(ZZᵀ + 0.1 I) ⊗ I_d) vec(W) = vec(X_tᵀy_t), task-major
        M = np.kron(2.0 * (Z @ Z.T + 0.1 * np.eye(T)), np.eye(d))
        for t in range(T):
            M[t * d:(t + 1) * d, t * d:(t + 1) * d] += Xs[t].T @ Xs[t]
        W = np.linalg.solve(M, np.einsum("tnd,tn->td", Xs, ys).ravel()).reshape(T, d).T
        assert np.allclose(sol.W, W, rtol=1e-8, atol=1e-10), abs(sol.W - W).max()
        assert mc.certify(prob, W).gap <= 1e-8 * abs(sol.objective)
    """
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
