import os
import sys

# OpenMP threads that spin while waiting starve each other on a shared or oversubscribed CPU (measured 15x
# slower steps with 2 busy-waiting threads on 2 shared cores); must be set before torch loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def run(argv=None) -> int:
    """python -m train [options] | python -m train export --run DIR --out encoder.pt"""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["export"]:
        from train.export import main as export_main
        return export_main(argv[1:])
    from train.loop import main
    return main(argv)


if __name__ == "__main__":
    raise SystemExit(run())
