"""The Docker action's entrypoint: put the package on the path and hand over to it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))

from secrets_sync.cli import main

sys.exit(main())
