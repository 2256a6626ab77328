import os

# OpenMP threads that spin while waiting starve each other on a shared or oversubscribed CPU (measured 15x
# slower steps with 2 busy-waiting threads on 2 shared cores); must be set before torch loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from train.loop import main  # noqa: E402

raise SystemExit(main())
