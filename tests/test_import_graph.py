"""The tree is the architecture: imports between curvecast's modules point one way, lazy ones included."""

from __future__ import annotations

import ast
from pathlib import Path

import curvecast

ROOT = Path(curvecast.__file__).parent
# Layers, lowest first: a module may import from its own layer or a lower one, never from a higher one.
LAYERS = (
    ("curvecast.forecasting", "curvecast.series", "curvecast.metric_direction", "curvecast.failsafe",
     "curvecast.state_checks", "curvecast.series_store", "curvecast.history_state", "curvecast.history"),
    ("curvecast.logreaders", "curvecast.render", "curvecast._lightning", "curvecast.tensorboard_plugin",
     "curvecast.worker_thread", "curvecast.fit_process", "curvecast.fit_server"),
    ("curvecast.callbacks", "curvecast.integrations", "curvecast.offline"),
    ("curvecast.live",),
    ("curvecast.demo", "curvecast.cli", "curvecast.__main__"),
)  # fmt: skip


def _modules() -> dict[str, Path]:
    """Every module but the package ``__init__`` files, which only re-export."""
    return {
        ".".join(("curvecast", *p.relative_to(ROOT).with_suffix("").parts)): p
        for p in ROOT.rglob("*.py")
        if p.name != "__init__.py"
    }


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """For each module, the curvecast modules it imports anywhere in it (inside functions and TYPE_CHECKING too)."""
    packages = {".".join(("curvecast", *p.parent.relative_to(ROOT).parts)) for p in ROOT.rglob("__init__.py")}
    imports: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                targets = {alias.name for alias in node.names}
            else:
                continue
            imports[name] |= {t for t in targets if (t in modules or t in packages) and t != name}
    return imports


def _layer(name: str) -> int:
    for index, layer in enumerate(LAYERS):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in layer):
            return index
    raise AssertionError(f"{name} is in no layer: add it to LAYERS")


def modules_in_cycles(imports: dict[str, set[str]]) -> list[str]:
    """The modules from which the imports lead back to themselves."""
    cycles = []
    for start in imports:
        todo, seen = [t for t in imports[start] if t in imports], set()
        while todo:
            name = todo.pop()
            if name == start:
                cycles.append(start)
                break
            if name not in seen:
                seen.add(name)
                todo.extend(t for t in imports[name] if t in imports)
    return cycles


def test_no_module_imports_one_that_imports_it_back():
    assert modules_in_cycles(_imports(_modules())) == []


def test_every_import_points_down_the_layers():
    upward = [
        f"{name} -> {target}"
        for name, targets in _imports(_modules()).items()
        for target in targets
        if _layer(target) > _layer(name)
    ]
    assert upward == []
