"""``python -m fiftyone_dedup``: the same as the ``fiftyone-dedup`` command."""

import sys

from fiftyone_dedup.cli.commands import main

sys.exit(main())
