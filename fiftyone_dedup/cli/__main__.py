"""``python -m fiftyone_dedup.cli``: the command line."""

import sys

from fiftyone_dedup.cli import main

sys.exit(main())
