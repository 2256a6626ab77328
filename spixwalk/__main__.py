import sys

from spixwalk.cli import main

sys.exit(main())
