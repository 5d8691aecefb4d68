"""``python -m fiftyone_dedup``: the same as the ``fiftyone-dedup`` command."""

import sys

from fiftyone_dedup.cli import main

sys.exit(main())
