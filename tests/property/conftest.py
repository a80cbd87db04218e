"""Shared set-up of the property-based tests (hypothesis).

Each test generates bad and edge-case input for one public function and asserts that the call
either returns a correct result or raises one of the library's own errors
(:class:`diffusion_lib.errors.DiffusionLibError`) with a message: never a raw torch or Python
error, never a silently wrong result. The profile keeps the suite within its CI budget.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "book",
    max_examples=int(os.environ.get("DIFFUSION_BOOK_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    derandomize=True,  # the same cases on every run: CI never fails by chance
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile("book")
