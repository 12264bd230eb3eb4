"""``python3 -m hostbridge.cli``: the same as the ``hostbridge`` command."""

import sys

from . import main

sys.exit(main())
