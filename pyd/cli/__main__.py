"""C{python -m pyd.cli}: the same as the C{pyd} console script."""

import sys

from pyd.cli import main

sys.exit(main())
