"""``python -m fastfnn.bench``: the same as ``fastfnn bench``."""

import sys

from . import main

sys.exit(main())
