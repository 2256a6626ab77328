"""`python -m evaluate` from a checkout: the stage's code loads as spixwalk.evaluate (its one name)."""
import sys

from spixwalk.evaluate.cli import main

sys.exit(main())
