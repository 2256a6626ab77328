"""`python -m data_manifest` from a checkout: the stage's code loads as spixwalk.data_manifest (its one name)."""
import sys

from spixwalk.data_manifest.cli import main

sys.exit(main())
