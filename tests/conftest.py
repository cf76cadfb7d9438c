"""Suite-wide settings for parallel workers (``pytest -n``, pytest-xdist).

``make test`` runs the suite on ``PYTEST_WORKERS`` workers with ``--dist loadfile``: the tests
of one file run in order on one worker (a file's tests may build on one another, as the
console's flow does on its shared server), and files spread over the workers.
"""

from __future__ import annotations

import os

# The CLI's tables are as wide as the terminal; a worker has none (its streams are pipes), so
# every worker renders at one width, wide enough for the tests' lines.
os.environ["COLUMNS"] = "200"
