"""``python -m isanet.cli``: the same as the ``isanet`` console script."""

import sys

from isanet.cli import main

sys.exit(main())
