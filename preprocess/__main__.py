"""`python -m preprocess` from a checkout: the stage's code loads as spixwalk.preprocess (its one name)."""
import sys

from spixwalk.preprocess.cli import main

sys.exit(main())
