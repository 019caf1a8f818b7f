"""``python -m sandbox``: the same as ``giftsync sandbox``."""

import sys

from sandbox.cli import main

sys.exit(main())
