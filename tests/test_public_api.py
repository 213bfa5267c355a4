"""The names `kfp_lineage` exports resolve, and importing the package alone loads neither kfp nor MLMD."""

import subprocess
import sys

import kfp_lineage


def test_every_exported_name_resolves():
    for name in kfp_lineage.__all__:
        assert getattr(kfp_lineage, name) is not None


def test_importing_the_package_is_cheap():
    code = "import sys, kfp_lineage; print('kfp' in sys.modules, 'ml_metadata' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
