"""The exceptions kfp-lineage raises; the CLI maps them to exit codes in one place."""


class LineageError(Exception):
    """Base class of every error kfp-lineage raises on purpose."""

    exit_code = 1


class InvalidInputError(LineageError):
    """The user's input (spec, parameter, URL, option) is wrong; nothing was run or written."""

    exit_code = 2


class StoreError(InvalidInputError):
    """The metadata store cannot be opened (bad URL, unreachable server, unreadable file)."""


class UnsupportedFeatureError(InvalidInputError):
    """The pipeline uses a KFP feature this runner cannot run locally; found before anything ran."""


class RemoteError(LineageError):
    """A remote service (Vertex AI, Cloud Storage, a Kubeflow Pipelines server) refused or failed a request."""

    exit_code = 1


class RunAbortedError(LineageError):
    """The runner stopped on an unexpected error (a bug, a store that failed for good) before the run ended; its
    running tasks were stopped and the run was recorded FAILED. The message names the file with the traceback."""

    exit_code = 1


class RunCanceled(KeyboardInterrupt):
    """A signal (SIGINT, SIGTERM, SIGHUP) stopped the run: its running tasks were killed and recorded CANCELED,
    and every execution and the run are final. A KeyboardInterrupt, so code that handles Ctrl-C handles it;
    `exit_code` is 128 + the signal's number (130, 143, 129), as a shell reports a process the signal killed."""

    def __init__(self, signal_number: int):
        super().__init__(signal_number)
        self.signal_number = signal_number
        self.exit_code = 128 + signal_number
