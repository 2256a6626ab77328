"""python -m train [options] | python -m train export --run DIR --out encoder.pt"""
import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["export"]:
        from .export import main as export_main
        return export_main(argv[1:])
    from .loop import main as train_main
    return train_main(argv)
