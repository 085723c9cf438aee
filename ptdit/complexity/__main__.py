"""`python -m ptdit.complexity`: the same as `ptdit flops`."""

import sys

from .cli import main

sys.exit(main())
