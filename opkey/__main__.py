"""``python -m opkey``: the same as the ``opkey`` command."""

import sys

from opkey.cli import main

sys.exit(main())
