"""pip's index options as uv takes them (uv_installer._index_arguments)."""

import pytest

from kfp_lineage.engine.exec import uv_installer
from kfp_lineage.ir import requirements


@pytest.mark.parametrize("value, expected", [
    ("127.0.0.1", "127.0.0.1"),
    ("pypi.internal:8080", "pypi.internal:8080"),
    ("http://127.0.0.1:34295/simple/", "127.0.0.1:34295"),
    ("https://user:secret@us-central1-python.pkg.dev/p/r/simple/", "us-central1-python.pkg.dev"),
])
def test_a_trusted_host_given_as_a_url_becomes_its_host_and_port(value, expected):
    assert uv_installer.trusted_host(value) == expected


def test_the_trusted_host_kfp_compiles_from_pip_index_urls_reaches_uv_as_a_host():
    # What KFP writes for pip_index_urls=["http://127.0.0.1:8000/simple/"] without pip_trusted_hosts.
    prefix = requirements.split_pip_prefix([
        "sh", "-c", "python3 -m pip install --quiet --index-url http://127.0.0.1:8000/simple/ --trusted-host "
                    "http://127.0.0.1:8000/simple/ 'kfp-lineage-components==0.1.0' && \"$0\" \"$@\"", "python3"])
    [install] = prefix.installs
    assert uv_installer._index_arguments(install.index) == [
        "--index-url", "http://127.0.0.1:8000/simple/", "--allow-insecure-host", "127.0.0.1:8000"]
