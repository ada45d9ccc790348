"""``python -m nsbox``."""

import sys

from .cli import main

sys.exit(main())
