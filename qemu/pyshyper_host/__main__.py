"""`python -m pyshyper_host ...` is the `pyshyper` command."""

import sys

from pyshyper_host.cli import main

sys.exit(main())
