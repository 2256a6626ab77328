"""The study: do superpixel nodes make a contrastive random walk learn more per training FLOP than CRW's patches?

    plan.py       arms x grid cells x seeds -> runs; the FLOP budget -> steps per arm; the machine's record
    runner.py     the store the arms train on, one run's training, one snapshot's scores (real stages, as
                  child processes that get the study's stop signals)
    bootstrap.py  the hierarchical paired bootstrap (seeds, then sequences)
    report.py     study.csv, study_comparisons.csv, study.png, study.md and the verdict sentence
    cli.py        `spixwalk study` / `python -m spixwalk.study` / `make study`

The arms and recipes live in spixwalk.train.recipes (what `spixwalk train --preset study-<arm>` trains).
"""
