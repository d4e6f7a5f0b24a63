"""Suite-wide pytest set-up: the repository root is importable (tests.sim.* helpers)."""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
