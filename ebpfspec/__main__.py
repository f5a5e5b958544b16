"""``python -m ebpfspec``."""

import sys

from ebpfspec.cli import main

sys.exit(main())
