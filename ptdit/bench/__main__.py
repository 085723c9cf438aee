"""`python -m ptdit.bench`: the same as `ptdit bench`."""

import sys

from .cli import cli_main

raise SystemExit(cli_main(sys.argv[1:]))
