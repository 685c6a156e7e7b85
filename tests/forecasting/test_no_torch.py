"""The brain must stay importable and usable without torch or Lightning, its imports pointing one way."""

import subprocess
import sys

from test_import_graph import modules_in_cycles


def test_importing_forecasting_does_not_import_torch_or_lightning():
    code = (
        "import sys, numpy as np\n"
        "from curvecast.forecasting import Forecaster\n"
        "Forecaster().fit(np.arange(1, 50), 1 + 1 / np.arange(1, 50), horizon=100)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', 'pytorch_lightning'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_brain_has_no_import_cycles():
    """Every import inside ``curvecast.forecasting`` points one way, lazy ones (inside a function, under
    ``TYPE_CHECKING``) included; the package ``__init__`` files, which only re-export, are left out."""
    import ast
    from pathlib import Path

    import curvecast.forecasting

    root = Path(curvecast.forecasting.__file__).parent
    paths = {
        ".".join(("curvecast", *p.relative_to(root.parent).with_suffix("").parts)): p
        for p in root.rglob("*.py")
        if p.name != "__init__.py"
    }
    imports = {name: set() for name in paths}
    for name, path in paths.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
                imports[name] |= {t for t in targets if t in paths and t != name}
    assert modules_in_cycles(imports) == []
