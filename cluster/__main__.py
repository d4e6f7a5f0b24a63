"""Entry point of `python -m cluster`."""

import sys

from .cli import main

sys.exit(main())
