"""The `kfp-lineage` command line: thin layers over the library, one module per noun.

Process-wide set-up happens here, before kfp and ml-metadata are imported by the command modules. The command
modules themselves are imported only when their command runs (`COMMAND_MODULES`): a read command never loads kfp
or google-cloud-aiplatform, and `--help` loads none of them.
"""

from __future__ import annotations

import importlib
import os
import warnings
from typing import Dict, List, Optional, Tuple

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

# Every command: name -> (module in kfp_lineage.cli, attribute, the short help `--help` lists). The short help is
# the first sentence of the command's docstring; tests/cli/test_cli.py checks this table against the commands.
COMMAND_MODULES: Dict[str, Tuple[str, str, str]] = {
    "check": ("check_commands", "check_command",
              "Check that a run recorded the lineage a lineage spec expects."),
    "compile": ("run_commands", "compile_command",
                "Compile every pipeline and component to IR YAML under specs/."),
    "envs": ("env_commands", "envs_group",
             "List and prune the cached environments tasks run in."),
    "expect": ("check_commands", "expect_command",
               "Print the lineage spec a recorded run satisfies, as YAML, to start a specs/<pipeline>.lineage.yaml "
               "from."),
    "impact": ("lineage_commands", "impact_command",
               "Show everything downstream of an artifact, grouped by run: the tasks that read it, what they wrote "
               "(models, metrics, endpoints), and so on down."),
    "index": ("store_commands", "index_command",
              "Add kfp-lineage's lineage-walk indexes to an existing store."),
    "recover": ("integrity_commands", "recover_command",
                "Mark the RUNNING executions of runs whose runner was killed as FAILED."),
    "run": ("run_commands", "run_command",
            "Run a pipeline locally and record its lineage."),
    "runs": ("lineage_commands", "runs_command",
             "List recent runs: id, pipeline, state, start time, duration and task counts."),
    "show": ("lineage_commands", "show_command",
             "Show one run (its tasks with states, durations, parameters and artifacts) or one artifact (every "
             "property, its producer and its consumers)."),
    "submit": ("submit_commands", "submit_command",
               "Submit a compiled pipeline to Vertex AI Pipelines or a Kubeflow Pipelines server."),
    "trace": ("lineage_commands", "trace_command",
              "Show where an artifact came from: its producer, their inputs, upstream to the sources, with the code "
              "version, the evaluations and the deployments that used it."),
    "verify": ("integrity_commands", "verify_command",
               "Re-hash artifacts and report any whose content changed since they were recorded."),
}


def load_command(name: str) -> click.Command:
    """Imports the module of command `name` and returns the command.

    Raises:
        KeyError: no command has this name.
    """
    module, attribute, _ = COMMAND_MODULES[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)


class _LazyGroup(click.Group):
    """A group whose commands are imported when they run; `--help` lists them from COMMAND_MODULES."""

    def list_commands(self, ctx: click.Context) -> List[str]:
        return sorted(set(COMMAND_MODULES) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            self.add_command(load_command(cmd_name), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click.Group's, with each short help from COMMAND_MODULES rather than from the imported command."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in COMMAND_MODULES:
                text = click.Command(name, help=COMMAND_MODULES[name][2]).get_short_help_str(limit)
            else:
                text = self.commands[name].get_short_help_str(limit)
            rows.append((name, text))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kfp-lineage")
def main() -> None:
    """Run compiled Kubeflow / Vertex AI pipelines locally and record their lineage in ML Metadata."""


def entrypoint(argv: Optional[List[str]] = None) -> None:
    """The console script: runs `main` with argv (default sys.argv[1:])."""
    main.main(args=argv, prog_name="kfp-lineage")
