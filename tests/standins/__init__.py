"""Stand-in servers for the Google Cloud and Kubeflow Pipelines APIs our code calls, on 127.0.0.1.

Tests point the real client libraries at them the way a user points them at an emulator or a private
endpoint; nothing in the client libraries is patched or mocked.
"""
