"""The brain must stay importable and usable without torch or Lightning."""

import subprocess
import sys


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
