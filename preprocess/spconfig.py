"""The one home of superpixel configurations: each algorithm's parameters, defaults, command-line
options and configuration name. preprocess, train, evaluate and the Makefile spell them this way.

Pure Python on purpose (no OpenCV / Zarr imports): every stage imports it to parse its options.
"""
from __future__ import annotations

ALGORITHMS = ("slic", "fh", "lsc", "random", "grid", "randvid")
# Controls, not superpixels: random Voronoi cells redrawn on every frame, a fixed regular grid (the same on every
# frame), and random Voronoi cells drawn once per video (shapeless but temporally coherent).
CONTROLS = ("random", "grid", "randvid")
FRAME_SIZE = 256  # side of the stored frames the label maps are computed on (preprocess --size default)
FRAME_RATE = 8.0  # frames per second sampled from each video (preprocess --fps default; videowalk frame_rate=8)
SLIC_ITERATIONS = 4  # OpenCV SLIC iterations of the default configuration (its name omits them)
DEFAULTS = {
    "slic": {"n_segments": 30, "compactness": 30.0, "impl": "opencv", "iterations": SLIC_ITERATIONS},
    "fh": {"scale": 600.0, "sigma": 0.5, "min_size": 400},
    # 2 iterations cost a quarter of 10; benchmarks/preprocess.py reports how many pixels agree
    "lsc": {"region_size": 47, "ratio": 0.5, "iterations": 2},
    "random": {"n_segments": 30},
    "grid": {"n_segments": 25},
    "randvid": {"n_segments": 25},
}
# parameter -> short letter in the configuration name, in name order
NAME_KEYS = {
    "slic": [("n_segments", "n"), ("compactness", "c")],
    "fh": [("scale", "s"), ("sigma", "g"), ("min_size", "m")],
    "lsc": [("region_size", "r"), ("ratio", "a"), ("iterations", "i")],
    "random": [("n_segments", "n")],
    "grid": [("n_segments", "n")],
    "randvid": [("n_segments", "n")],
}
# (option, argparse dest, algorithm, parameter, type, help); the dest is what from_args() reads
OPTIONS = [
    ("--n-segments", "n_segments", "slic", "n_segments", int,
     "slic/random/grid/randvid: target number of segments (grid: rows x cols closest to it)"),
    ("--compactness", "compactness", "slic", "compactness", float, "slic compactness"),
    ("--slic-impl", "slic_impl", "slic", "impl", str,
     "opencv: fast SLIC on a 2x downsampled frame; skimage: the reference"),
    ("--slic-iterations", "slic_iterations", "slic", "iterations", int, "opencv SLIC iterations"),
    ("--scale", "scale", "fh", "scale", float, "fh scale"),
    ("--sigma", "sigma", "fh", "sigma", float, "fh sigma"),
    ("--min-size", "min_size", "fh", "min_size", int, "fh min_size"),
    ("--region-size", "region_size", "lsc", "region_size", int, "lsc region size (pixels, <= the frame side)"),
    ("--ratio", "ratio", "lsc", "ratio", float, "lsc compactness ratio"),
    ("--lsc-iterations", "lsc_iterations", "lsc", "iterations", int, "lsc iterations"),
]


def add_options(parser, aliases: dict | None = None):
    """Add every algorithm's options (with their defaults, which --help shows) to a parser or argument group.

    aliases: extra spellings kept for old command lines, e.g. {"--lsc-iterations": ["--iterations"]}.
    """
    aliases = aliases or {}
    for opt, dest, alg, key, typ, help_ in OPTIONS:
        kw = {"choices": ["opencv", "skimage"]} if dest == "slic_impl" else {}
        parser.add_argument(opt, *aliases.get(opt, []), dest=dest, type=typ, default=DEFAULTS[alg][key],
                            help=help_, **kw)  # the help formatter adds the default
    return parser


def params_from_args(alg: str, args) -> dict:
    """The full parameter dict of `alg` from parsed options (defaults where an option is absent)."""
    if alg not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {alg!r}; choose one of {', '.join(ALGORITHMS)}")
    params = dict(DEFAULTS[alg])
    for _, dest, a, key, _, _ in OPTIONS:
        if a == alg or (alg in CONTROLS and key == "n_segments" and a == "slic"):
            if key in params and hasattr(args, dest):
                params[key] = getattr(args, dest)
    return params


def from_args(args, alg: str | None = None) -> tuple[str, dict, str]:
    """(algorithm, parameters, configuration name) from parsed options; args.alg unless alg is given."""
    alg = alg or args.alg
    params = params_from_args(alg, args)
    return alg, params, config_name(alg, **params)


def config_name(alg: str, **params) -> str:
    """Stable name of a label configuration, e.g. slic-n30-c30, fh-s600-g0.5-m400, lsc-r47-a0.5-i2."""
    if alg not in NAME_KEYS:
        raise ValueError(f"unknown algorithm {alg!r}; expected one of {sorted(NAME_KEYS)}")
    parts = [alg]
    for key, short in NAME_KEYS[alg]:
        if key not in params:
            raise ValueError(f"config_name({alg!r}) needs {key}")
        v = params[key]
        parts.append(f"{short}{v:g}" if isinstance(v, float) else f"{short}{v}")
    if alg == "slic" and params.get("impl", "opencv") != "opencv":
        parts.append(params["impl"])  # the fast OpenCV SLIC is the default; skimage's is named
    elif alg == "slic" and params.get("iterations", SLIC_ITERATIONS) != SLIC_ITERATIONS:
        parts.append(f"i{params['iterations']}")  # a non-default iteration count is another configuration
    return "-".join(parts)


def parse_name(cfg: str) -> tuple[str, dict]:
    """Inverse of config_name for the names it writes: 'fh-s600-g0.5-m400' -> ('fh', {...})."""
    alg, *parts = cfg.split("-")
    if alg not in NAME_KEYS or len(parts) < len(NAME_KEYS[alg]):
        raise ValueError(f"{cfg!r}: not a configuration name (e.g. slic-n30-c30, fh-s600-g0.5-m400, lsc-r47-a0.5-i2)")
    params = dict(DEFAULTS[alg])
    try:
        for (key, short), part in zip(NAME_KEYS[alg], parts):
            if not part.startswith(short):
                raise ValueError
            params[key] = type(DEFAULTS[alg][key])(float(part[len(short):]))
        for extra in parts[len(NAME_KEYS[alg]):]:
            if alg == "slic" and extra == "skimage":
                params["impl"] = "skimage"
            elif alg == "slic" and extra.startswith("i"):
                params["iterations"] = int(extra[1:])
            else:
                raise ValueError
    except ValueError:
        raise ValueError(f"{cfg!r}: not a configuration name (e.g. slic-n30-c30, fh-s600-g0.5-m400)") from None
    if config_name(alg, **params) != cfg:
        raise ValueError(f"{cfg!r}: not in canonical form (did you mean {config_name(alg, **params)}?)")
    return alg, params
