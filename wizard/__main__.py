"""Entry point for `python -m wizard`."""

import sys

from wizard.app import main

sys.exit(main())
