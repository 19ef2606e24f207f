"""``python -m directlpi``: the command line, as the ``directlpi`` script."""

import sys

from directlpi.cli import main

sys.exit(main())
