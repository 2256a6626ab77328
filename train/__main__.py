"""`python -m train` (or torchrun -m train) from a checkout: the stage's code loads as spixwalk.train."""
import sys

from spixwalk.train.cli import main  # spixwalk's __init__ sets OMP_WAIT_POLICY before torch loads

sys.exit(main())
