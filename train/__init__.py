"""Lean trainer: contrastive random walk over superpixel (or CRW patch) nodes, read from the Zarr store.

data.py   clips of T stored frames + label maps, identical spatial augmentation, pooling weights, padding
pool.py   eq. 3.5 superpixel pooling: overlap weights by bincount, applied as one batched matmul
model.py  stride-8 ResNet-18 encoder, 128-d head, WalkNet (superpixel / patch / mixed nodes)
walk.py   masked palindrome walk loss (thesis: k=1..T-1 summed; CRW: k=2..T-1 averaged)
loop.py   Adam, bf16 autocast on CUDA, DDP under torchrun, atomic checkpoints, exact resume
log.py    log.jsonl / log.csv, loss.png, summary.json
checkpoints.py  --keep-every history, --init-from warm starts (files read through weights.py)
export.py       `python -m train export`: weights-only torchvision encoder + padding + metadata
runconfig.py    --config RUN/config.json reruns, command-line overrides
tracking.py     optional --tensorboard / --wandb curves
"""
