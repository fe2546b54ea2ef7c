"""``python -m dpcore``."""

import sys

from dpcore.cli import main

sys.exit(main())
