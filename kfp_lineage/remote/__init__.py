"""Compiling pipelines and submitting them to Kubeflow Pipelines or Vertex AI Pipelines."""
