"""The `kfp-lineage` command line: thin layers over the library, one module per noun.

Process-wide set-up happens here, before kfp and ml-metadata are imported by the command modules.
"""

from __future__ import annotations

import os
import warnings
from typing import List, Optional

# ml-metadata's C++ layer logs every MySQL/PostgreSQL connection to stderr through glog; only warnings and
# errors should reach a user. glog reads this when the extension loads, so it is set before any import of it.
os.environ.setdefault("GLOG_minloglevel", "1")
# gRPC's core logs a failed TLS handshake at INFO before the call fails; the call's error is reported in one line.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

# google-api-core warns on every import that Python 3.11 support ends in 2027; it is not actionable for users
# of this CLI and buries the progress lines. Installed before the library imports that trigger it.
warnings.filterwarnings("ignore", message=r"You are using a Python version .* which Google will stop supporting")
warnings.filterwarnings("ignore", message=r"The default base_image used by the @dsl.component decorator")

import click  # noqa: E402

from kfp_lineage.cli import check_commands, integrity_commands, lineage_commands, run_commands, submit_commands  # noqa: E402,E501
from kfp_lineage.cli import env_commands  # noqa: E402


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kfp-lineage")
def main() -> None:
    """Run compiled Kubeflow / Vertex AI pipelines locally and record their lineage in ML Metadata."""


for _module in (run_commands, lineage_commands, check_commands, submit_commands, integrity_commands, env_commands):
    for _command in _module.COMMANDS:
        main.add_command(_command)


def entrypoint(argv: Optional[List[str]] = None) -> None:
    """The console script: runs `main` with argv (default sys.argv[1:])."""
    main.main(args=argv, prog_name="kfp-lineage")
