"""``python -m streamrec`` runs the command-line interface."""

import sys

from streamrec.cli import main

sys.exit(main())
