# SPDX-License-Identifier: MIT
"""pytest fixtures of the Python tests."""

import zlib

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    """A generator seeded from the test's name: reproducible, and different
    for each parametrized case."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
