# SPDX-License-Identifier: MIT
"""fp8kv.conform's own errors (no numpy needed to import them)."""


class UsageError(ValueError):
    """A target, convention, claim or option that cannot be run as given."""


class HarnessError(RuntimeError):
    """The CPU backend and the harness's model of a call disagree: a defect
    of fp8kv.conform or of the library, never of the writer under test."""
