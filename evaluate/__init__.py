"""Evaluation: DAVIS label propagation with a trained encoder, J&F as the official toolkit, reports.

cli.py                   `python -m evaluate davis | metrics | synth | superpixels | report`
davis_run.py             the `evaluate davis` driver: first-frame mask in, indexed PNGs (+ overlays) out
propagate.py             CRW label propagation in bounded memory (context frames, radius, top-k)
features.py              per-frame features: a trained encoder (res3, stride 8), a random one, pooled RGB
davis_io.py              reading and writing DAVIS-format folders (listings, frames, masks, PNGs, checks)
metrics.py               J and F as davis2017-evaluation computes them; CSVs into the results folder
superpixel_benchmark.py  `evaluate superpixels`: a store's superpixel maps scored against DAVIS masks
superpixel_metrics.py    boundary recall, undersegmentation error, achievable accuracy (the one definition)
synth.py                 synthetic DAVIS-2017-format sequences with exact masks (tests, the demo)
report.py                tables and figures across runs (`evaluate report`, the demo's table)
"""
