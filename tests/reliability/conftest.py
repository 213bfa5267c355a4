"""Hypothesis profiles for the fuzz tests (test_fuzz_*.py).

The "ci" profile (the default) is derandomized, so every run tries the same inputs and a failure repeats;
it keeps the whole fuzz suite well under a minute on two cores. For a longer local hunt, run e.g.
`KFP_LINEAGE_FUZZ_PROFILE=deep .venv/bin/python -m pytest -q tests/reliability` (random, many more examples).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE_ENV_VAR = "KFP_LINEAGE_FUZZ_PROFILE"

settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "deep",
    max_examples=1000,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get(PROFILE_ENV_VAR, "ci"))
