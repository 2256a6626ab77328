"""The study: do superpixel nodes make a contrastive random walk learn more per training FLOP than CRW's patches?

    plan.py       arms x grid cells x seeds -> runs; the FLOP budget -> steps per arm; the machine's record
    runner.py     the store the arms train on, one run's training, one snapshot's scores (real stages, as
                  child processes that get the study's stop signals)
    bootstrap.py  the hierarchical paired bootstrap (seeds, then sequences)
    report.py     study.csv, study_comparisons.csv, study.png, study.md and the verdict sentence
    cli.py        `spixwalk study` / `python -m spixwalk.study` / `make study`

The arms and recipes live in spixwalk.train.recipes (what `spixwalk train --preset study-<arm>` trains).
"""


def device_protocol(store: str, davis: str, sequences: list[str], work: str, seconds: float, tiny: bool) -> dict:
    """The study's short GPU protocol for a device slot (benchmarks/gpu.py part `study`): superpixels and CRW
    patches, seeds 10 and 11, 1.2e15 training FLOPs each (about 1,000 superpixel steps), scored once at x0.5 on
    the carried sequences. `tiny` (the CPU rehearsal): one step at 64 px. Returns the outputs' summary."""
    import csv
    from pathlib import Path

    from .cli import main

    flops = "7.3e10" if tiny else "1.2e15"
    args = ["--store", store, "--davis", davis, "--scored", ",".join(sequences), "--arms", "superpixels,patches-crw",
            "--seeds", "10" if tiny else "10,11", "--budget-flops", flops, "--points", "1", "--eval-scale", "0.5", "--jobs", "1",
            "--threads", "4", "--keypoints", "none", "--work", work, "--device", "cpu" if tiny else "cuda"]
    if tiny:
        args += ["--img-size", "64", "--batch", "2"]
    code = main(args)
    out = {"exit": code, "budget_flops": float(flops), "seconds_allowed": seconds}
    comps = Path(work) / "study_comparisons.csv"
    if comps.exists():
        out["comparisons"] = list(csv.DictReader(open(comps)))
        out["verdict"] = (Path(work) / "study.md").read_text().split("\n\n")[2]
    return out
