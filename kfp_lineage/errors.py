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
