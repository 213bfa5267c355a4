"""The Google Cloud project and region the stand-ins serve, as the fixtures start them."""

PROJECT = "test-project"
PROJECT_NUMBER = "123456789012"
LOCATION = "us-central1"
