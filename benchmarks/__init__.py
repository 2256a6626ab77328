"""Benchmarks (`make bench`): what every stage's benchmark shares, the --quick smoke option and the JSON out."""
import json
from pathlib import Path


def add_quick(parser, quick: dict) -> None:
    """--quick: every figure (the same JSON keys) from less work, the values of `quick`."""
    parser.add_argument("--quick", action="store_true", help="smoke run, every figure from less work: "
                        + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in quick.items()))


def parse_with_quick(parser, quick: dict, argv=None):
    a = parser.parse_args(argv)
    if a.quick:
        vars(a).update(quick)
    return a


def write_json(res: dict, path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    return out
