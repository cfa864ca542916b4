# SPDX-License-Identifier: MIT
"""python3 -m fp8kv.conform TARGET...: see fp8kv.conform.cli."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
