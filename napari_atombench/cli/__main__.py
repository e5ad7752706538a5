"""``python -m napari_atombench.cli``."""

import sys

from . import main

sys.exit(main())
