"""``python -m mtlcvx``."""

import sys

from .cli import main

sys.exit(main())
