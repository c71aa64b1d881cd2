"""The standing adversarial suite (issue 11): property-based fuzzing with hypothesis.

Profiles: `ci` (the default) is derandomized (the same examples on every run, so a failure is
reproducible and the suite's time is stable), keeps no example database in the checkout, and
bounds every test's example count in the test itself; `deep` (HYPOTHESIS_PROFILE=deep) runs
ten times as many random examples, for a search by hand.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,  # a shared 2-core machine: time is measured by benchmarks, not here
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "deep",
    parent=settings.get_profile("ci"),
    derandomize=False,
    max_examples=1000,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def examples(n: int) -> int:
    """A test's example count: `n` in CI, ten times that in the deep profile."""
    return n * 10 if os.environ.get("HYPOTHESIS_PROFILE") == "deep" else n
