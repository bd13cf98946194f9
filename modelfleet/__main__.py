"""`python -m modelfleet`: the command line, which lives above this package (`cli/`)."""

import sys

from cli.main import main

sys.exit(main())
