"""`python3 -m shyper ...`: the `shyper` command."""

import sys

from shyper.cli import main

sys.exit(main())
