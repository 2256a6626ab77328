#!/bin/bash
# Submit cluster/preprocess.slurm as an array of ceil(shards / SHARDS_PER_TASK) tasks.
# logs/ is created first: SLURM opens --output before the job script runs. Extra arguments go to
# sbatch; an --array among them replaces the computed one (partial resubmission).
set -euo pipefail
cd "$(dirname "$0")/.."
MANIFEST=${MANIFEST:-work/manifest.jsonl}
SHARDS_PER_TASK=${SHARDS_PER_TASK:-8}
PYTHON=${PYTHON:-.venv/bin/python}
mkdir -p logs
export MANIFEST SHARDS_PER_TASK PYTHON
TASKS=$("$PYTHON" -c "import sys; from spixwalk.data_manifest.manifest import by_shard; \
print(-(-len(by_shard(sys.argv[1])) // int(sys.argv[2])))" "$MANIFEST" "$SHARDS_PER_TASK")
ARRAY="--array=0-$((TASKS - 1))"
for a in "$@"; do [[ $a == --array* || $a == -a* ]] && ARRAY=; done
echo "$MANIFEST: $TASKS task(s) of $SHARDS_PER_TASK shard(s)"
exec sbatch ${ARRAY} "$@" cluster/preprocess.slurm
