"""`python -m mailagent`: the same as the `mailagent` command."""

import sys

from mailagent.cli import main

sys.exit(main())
