"""`python -m secrets_sync`: the same as the `secrets-sync` command."""

import sys

from .cli import main

sys.exit(main())
