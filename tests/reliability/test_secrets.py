"""Secrets never reach MLMD, task logs, progress output or errors: a planted secret is searched for everywhere."""

import os
import subprocess
import sys

from kfp import compiler

from kfp_lineage import redaction
from tests import conftest
from tests.reliability import faults

KFP_LINEAGE = os.path.join(os.path.dirname(sys.executable), "kfp-lineage")
PASSWORD = "pl4nted-Pa55word"
URL_PASSWORD = "url-s3cret-9876"
TOKEN = "tok-0123456789abcdef"


def _dump_store(store) -> str:
    """Every artifact, execution and context of the store as text."""
    parts = [str(x) for x in store.get_artifacts()] + [str(x) for x in store.get_executions()]
    parts += [str(x) for x in store.get_contexts()]
    return "\n".join(parts)


def _all_files_text(root: str) -> str:
    texts = []
    for directory, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(directory, name), "rb") as f:
                texts.append(f.read().decode("utf-8", "replace"))
    return "\n".join(texts)


def test_secret_parameters_and_credential_urls_are_redacted_everywhere(tmp_path):
    spec_path = tmp_path / "redaction.yaml"
    compiler.Compiler().compile(faults.with_secrets, str(spec_path))
    store = tmp_path / "mlmd.sqlite"
    completed = subprocess.run(
        [KFP_LINEAGE, "run", str(spec_path), "--store", str(store), "--pipeline-root", str(tmp_path / "root"),
         "--run-id", "s", "--json",
         "--param", f"db_password={PASSWORD}",
         "--param", f"source_uri=https://reader:{URL_PASSWORD}@data.example/table.csv?token={TOKEN}",
         "--param", f"api_key={TOKEN}"],
        capture_output=True, text=True,
    )
    assert completed.returncode == 0, completed.stderr
    everything = "\n".join([completed.stdout, completed.stderr, _dump_store(conftest.open_store(str(store))),
                            _all_files_text(str(tmp_path / "root"))])
    for secret in (PASSWORD, URL_PASSWORD, TOKEN):
        assert secret not in everything
    # what stays is useful: the redacted URL and the fact that the task ran
    assert "https://reader:***@data.example/table.csv?token=***" in everything
    assert "connecting with *** to" in _all_files_text(str(tmp_path / "root" / "secrets" / "s" / "logs"))


def test_a_bad_value_for_a_secret_parameter_is_not_echoed_in_the_error(tmp_path):
    from kfp import dsl

    @dsl.pipeline(name="numeric-secret")
    def numeric_secret(api_token: int = 0):
        faults.produce()

    spec_path = tmp_path / "n.yaml"
    compiler.Compiler().compile(numeric_secret, str(spec_path))
    completed = subprocess.run([KFP_LINEAGE, "run", str(spec_path), "--store", str(tmp_path / "m.sqlite"),
                                "--param", f"api_token={TOKEN}"], capture_output=True, text=True)
    assert completed.returncode == 2
    assert TOKEN not in completed.stderr
    assert completed.stderr.strip() == "Error: parameter 'api_token' expects int, got '***': pass --param api_token=<int>"


def test_secret_names():
    assert all(redaction.is_secret_name(n) for n in ("password", "db_password", "apiKey", "api_key", "token",
                                                    "GITHUB_TOKEN", "client_secret", "key", "signing_key"))
    assert not any(redaction.is_secret_name(n) for n in ("label_column", "cache_key", "source_uri", "keyboard",
                                                        "merged_input_keys", "primary_key", "threshold"))


def test_ordinary_names_that_contain_key_or_token_are_not_secret():
    # The names a trial run caught before the deny-list: redacting them broke cache hits and downstream values.
    assert not any(redaction.is_secret_name(n) for n in (
        "max_tokens", "num_tokens", "label_key", "object_key", "sort_key", "partition_key", "eos_token",
        "pad_token", "model_signature", "tokenizer", "keys"))
    assert all(redaction.is_secret_name(n) for n in (
        "access_token", "hf_token", "refresh_token", "AUTH_TOKEN", "secret_key", "aws_secret_access_key",
        "private_key", "sshKey", "passphrase", "client_secret", "db_passwd"))
    assert redaction.redact("max_tokens", 1024) == 1024
    assert redaction.redact("label_key", "target") == "target"


def test_values_shaped_like_credentials_are_redacted_whatever_their_name():
    github = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----"
    for value in (github, jwt, pem, "AKIA" + "IOSFODNN7EXAMPLE"):
        assert redaction.redact("note", value) == redaction.REDACTED
        assert value in redaction.secret_values({"note": value})
    for ordinary in ("gs://bucket/data.csv", "hf_hub_dataset_name", "sk-learn", "a" * 64):
        assert redaction.redact("note", ordinary) == ordinary


def test_signed_url_signatures_are_redacted():
    url = "https://acct.blob.core.windows.net/c/model.pkl?sv=2024-01-01&sig=c2lnbmF0dXJl"
    assert redaction.redact_url(url) == "https://acct.blob.core.windows.net/c/model.pkl?sv=2024-01-01&sig=***"
    signed = "https://storage.googleapis.com/b/o?X-Goog-Signature=abcd1234&X-Goog-Expires=900"
    assert redaction.redact_url(signed) == "https://storage.googleapis.com/b/o?X-Goog-Signature=***&X-Goog-Expires=900"
