# glc — run `make help` for the list of targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Extra pip arguments for torch, e.g. a CPU-only VM: TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu"
TORCH_INDEX ?=
EXPERIMENT ?= knn
DATA_ROOT ?= data/synthetic/demo-seed0
OUT_ROOT ?= out
export LUIGI_CONFIG_PATH := $(CURDIR)/conf/luigi.cfg
export PYTHONHASHSEED := 0
LUIGI := $(VENV)/bin/luigi --module glc.tasks --local-scheduler
# One line per experiment target below: `name: check-java install ; $(RUN_EXPERIMENT) ## experiment: ...` runs the whole
# DAG for tasks/<name>.toml and prints its report summary.
RUN_EXPERIMENT = $(LUIGI) Submission --experiment $@ --data-root $(DATA_ROOT) --out-root $(OUT_ROOT) && \
	$(PY) -m glc show --experiment $@ --data-root $(DATA_ROOT) --out-root $(OUT_ROOT)
EXPERIMENTS := $(basename $(notdir $(wildcard tasks/*.toml)))

.PHONY: help install check-java demo test test-all test-faults lint format docs show synth-tiny synth-demo bench bench-real bench-synth-cv bench-synth bench-etl bench-etl-full bench-full bench-neighbours bench-loader bench-leaderboard bench-validation-shift bench-train-throughput bench-maps bench-pretraining bench-rf bench-fusion bench-fusion-feed gpu-table bench-table-load satclip clean $(EXPERIMENTS)

help: ## list every target with its description
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

check-java: ## check that Java (8/11/17, needed by Spark) is installed
	@java -version >/dev/null 2>&1 || { echo "ERROR: Spark needs Java 8, 11 or 17 and 'java -version' failed."; \
	  echo "Install it, e.g.: sudo apt-get install -y openjdk-17-jre-headless   (then rerun make)"; exit 1; }

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24"
	$(PIP) install -c constraints.txt $(TORCH_INDEX) -e '.[dev]'
	@# petastorm 0.13.1 declares setuptools<70, which conflicts with torch's setuptools>=77; it runs fine with the
	@# newer setuptools, so it is installed without dependency resolution (its runtime deps are in pyproject.toml).
	$(PIP) install -c constraints.txt --no-deps petastorm==0.13.1
	@touch $@

install: $(VENV)/.installed ## create .venv and install glc with the pinned stack (constraints.txt)

demo: check-java install ## run the kNN experiment's whole DAG on the demo world (generated if missing); print its scores, submission, report and map
	@start=$$(date +%s); \
	$(LUIGI) Submission --experiment $(EXPERIMENT) --data-root $(DATA_ROOT) --out-root $(OUT_ROOT) && \
	$(PY) -m glc show --experiment $(EXPERIMENT) --data-root $(DATA_ROOT) --out-root $(OUT_ROOT) && \
	echo "demo DAG wall time: $$(( $$(date +%s) - start )) s"

test: check-java install ## run the test suite (excludes tests marked slow); fails if no test is collected
	@$(PY) -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "ERROR: no tests were collected"; exit 1; fi; exit $$rc

test-all: check-java install ## run every test, slow ones included
	$(PY) -m pytest -m ""

test-faults: check-java install ## fault-injection suite on the real engines (Spark workers killed, luigid restarted, GCS server failing, disk full, DDP rank killed; ~20 min, needs root for the tmpfs) -> bench/results/faults.json
	$(PY) -m bench.faults

lint: install ## ruff lint + format check of glc/, bench/, tests/, docs/ (configured in pyproject.toml; line length 120)
	$(VENV)/bin/ruff check glc bench tests docs
	$(VENV)/bin/ruff format --check glc bench tests docs

format: install ## apply ruff's fixes and formatting (then review the diff)
	$(VENV)/bin/ruff check --fix glc bench tests docs
	$(VENV)/bin/ruff format glc bench tests docs

docs: install ## build the documentation site into site/ (mkdocs --strict: a broken link or stale reference fails); DOCS_SERVE=1 serves it
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(VENV)/bin/mkdocs $(if $(DOCS_SERVE),serve,build --strict)

frequency: check-java install ; $(RUN_EXPERIMENT) ## experiment: region-frequency baseline (tasks/frequency.toml)
knn: check-java install ; $(RUN_EXPERIMENT) ## experiment: kNN neighbour model + expected-F1 decoding (tasks/knn.toml)
geolocation-asl: check-java install ; $(RUN_EXPERIMENT) ## experiment: geolocation MLP + ASL via Spark parquet -> Petastorm -> Lightning
geolocation-po: check-java install ; $(RUN_EXPERIMENT) ## experiment: the geolocation MLP pretrained on the presence-only sites (multinomial PO loss), then fitted on PA with the PO term kept
tile-cnn: check-java install ; $(RUN_EXPERIMENT) ## experiment: DS@GT tile CNN on the patches' 8x8 DCT planes (tasks/tile-cnn.toml)
tile-cnn-shuffled: check-java install ; $(RUN_EXPERIMENT) ## experiment: control: tile-cnn on tiles shuffled across surveys
tile-cnn-idct: check-java install ; $(RUN_EXPERIMENT) ## experiment: tile CNN on images reconstructed (IDCT) from the DCT planes
tile-cnn-rasters: check-java install ; $(RUN_EXPERIMENT) ## experiment: tile CNN on environmental raster DCT tiles (land cover, climate)
tile-cnn-rasters-po: check-java install ; $(RUN_EXPERIMENT) ## experiment: tile-cnn-rasters with a presence-only term read from the rasters' tiles at the PO sites
tile-cnn-geo: check-java install ; $(RUN_EXPERIMENT) ## experiment: tile CNN latent + geolocation encoder (tasks/tile-cnn-geo.toml)
tile-cnn-geo-po: check-java install ; $(RUN_EXPERIMENT) ## experiment: tile-cnn-geo with a presence-only term read from the PO sites' patches (a synthetic world's PO patches are rendered on first use)
timeseries-cnn: check-java install ; $(RUN_EXPERIMENT) ## experiment: DS@GT time-series CNN on Landsat 1D-DCT planes (tasks/timeseries-cnn.toml)
tile2vec: check-java install ; $(RUN_EXPERIMENT) ## experiment: tile2vec pretraining (tasks/encoders/tile2vec.toml) + MLP head on the frozen embedding
tile2vec-untrained: check-java install ; $(RUN_EXPERIMENT) ## experiment: control: the same head on the untrained tile2vec encoder
tile2vec-finetune: check-java install ; $(RUN_EXPERIMENT) ## experiment: tile CNN initialised from the tile2vec encoder, fine-tuned end to end
satclip: check-java install ## pretrain SatCLIP (tasks/encoders/satclip.toml): retrieval geo-localisation vs random, heatmap, embeddings
	$(PY) -m glc encoder --encoder satclip --data-root $(DATA_ROOT) --out-root $(OUT_ROOT)
geolocation-satclip: check-java install ; $(RUN_EXPERIMENT) ## experiment: geolocation MLP on the SatCLIP location embedding
timeseries-cnn-shuffled: check-java install ; $(RUN_EXPERIMENT) ## experiment: control: timeseries-cnn on series shuffled across surveys
rf: check-java install ; $(RUN_EXPERIMENT) ## experiment: GLC2020 random forest on environmental vectors (multi-class over survey x species rows)
inception: check-java install ; $(RUN_EXPERIMENT) ## experiment: GLC2020 Inception-v3 (timm) on patch + elevation + land cover, softmax, SGD
glc2020-fusion: check-java install ; $(RUN_EXPERIMENT) ## experiment: GLC2020 late fusion: equal-weight average of rf and inception
gbm: check-java install ; $(RUN_EXPERIMENT) ## experiment: LightGBM re-ranking of neighbour/region candidates with survey + env features
blend: check-java install ; $(RUN_EXPERIMENT) ## experiment: blend of gbm, tile-cnn-rasters and knn, weights fitted on validation
stack: check-java install ; $(RUN_EXPERIMENT) ## experiment: stacking: LightGBM on the validation scores of fusion-concat, gbm, rf and knn (cross-fitted)
fusion: check-java install ; $(RUN_EXPERIMENT) ## experiment: Tighnari fusion (temporal Swin, image, tabular, GFV, HCAM, mixup, 3-fold, PO correction)
fusion-concat: check-java install ; $(RUN_EXPERIMENT) ## experiment: the fusion with concatenation instead of HCAM (baseline)
fusion-concat-po: check-java install ; $(RUN_EXPERIMENT) ## experiment: fusion-concat with a presence-only term on its image branch, read from the PO sites' patches
fusion-efficientnet: check-java install ; $(RUN_EXPERIMENT) ## experiment: the fusion with EfficientNet-B0 as image backbone (lightweight variant)
fusion-paper: check-java install ; $(RUN_EXPERIMENT) ## experiment: the fusion at the paper's widths (Swin-T 224 px, 10 folds): for a GPU
fusion-paper-fast: check-java install ; $(RUN_EXPERIMENT) ## experiment: fusion-paper with the measured GPU speed switches (batch 256, CUDA graphs): for a GPU

bench: bench-real bench-synth-cv bench-synth bench-etl bench-neighbours bench-loader bench-leaderboard bench-train-throughput bench-maps bench-pretraining bench-rf bench-fusion bench-fusion-feed ## every benchmark (results in bench/results/*.json)

bench-real: install ## real-data benchmark: 5-fold spatial CV on the 4,716 real GLC24 test surveys -> bench/results/real_cv.json
	$(PY) -m bench.real_cv

bench-synth-cv: install ## the same CV table on the demo synthetic world, with its oracle as the top line -> bench/results/synth_cv.json
	$(PY) -m bench.synth_cv

bench-synth: install ## synthetic-world generation: wall/CPU time, peak RSS, oracle for demo and full (~35 min) -> bench/results/synth.json
	$(PY) -m bench.synth --scales $(or $(SCALES),demo,full)

bench-etl: check-java install ## ETL speed: RasterTiles, PatchTiles (PA + 200k PO sites), CubeFeatures vs their in-process limits, profile, PO-scale hours (~25 min) -> bench/results/etl.json
	$(PY) -m bench.etl

FULL_ROOT ?= data/synthetic/full-seed0
bench-etl-full: check-java install ## every ETL task on the full synthetic world (generated if missing, ~40 min): time + peak RSS -> bench/results/etl_full.json
	@test -f $(FULL_ROOT)/_SUCCESS || $(PY) -m glc synth --scale full --seed 0 --out $(FULL_ROOT)
	$(PY) -m bench.etl_full --data-root $(FULL_ROOT) --out-root out-bench

bench-full: check-java install ## the whole DAG on the full synthetic world (ETL, neighbours, kNN, geolocation, then every CPU experiment while BUDGET_HOURS last; ONLY=a,b picks, MERGE=1 adds them to the last run, STEP_TIMEOUT_HOURS caps a step; EDITION=glc25: the GLC25 world, ETL + kNN + gbm first): per-task time, peak RSS, disk, scores -> bench/results/full_dag[_glc25].json
	$(PY) -m bench.full_dag $(if $(EDITION),--edition $(EDITION)) $(if $(filter command line environment,$(origin FULL_ROOT)),--data-root $(FULL_ROOT)) $(if $(ONLY),--experiments $(ONLY)) $(if $(BUDGET_HOURS),--budget-hours $(BUDGET_HOURS)) $(if $(STEP_TIMEOUT_HOURS),--step-timeout-hours $(STEP_TIMEOUT_HOURS)) $(if $(MERGE),--merge) $(if $(FRESH),--fresh)

bench-neighbours: check-java install ## exact vs LSH neighbours on 1M synthetic PO sites -> bench/results/neighbours.json
	$(PY) -m bench.neighbours

bench-loader: install ## Petastorm vs native pyarrow vs in-memory loader samples/s on one parquet -> bench/results/loader.json
	$(PY) -m bench.loader

bench-leaderboard: check-java install ## every experiment in tasks/ on the demo world (EDITION=glc25: the GLC25 one; SEED=1: recheck on an unseen world -> bench/results/synth_leaderboard[_seed1].json; both: synth_leaderboard_glc25_seed1.json; PO_RECORDS=N: a demo world with N presence-only records -> *_poN.json), scored on its hidden test labels -> bench/results/synth_leaderboard[_glc25].json
	$(PY) -m bench.leaderboard $(if $(EDITION),--edition $(EDITION)) $(if $(ONLY),--only $(ONLY)) $(if $(SEED),--seed $(SEED)) $(if $(PO_RECORDS),--po-records $(PO_RECORDS))

bench-validation-shift: check-java install ## validation blocks vs test_like: which predicts the hidden-test score on the shifted GLC25 demo world (VS_EXPERIMENTS=knn,gbm,fusion; SEED=1 rechecks on an unseen world) -> bench/results/validation_shift_glc25[_seed1].json
	$(PY) -m bench.validation_shift --edition $(or $(EDITION),glc25) $(if $(VS_EXPERIMENTS),--experiments $(VS_EXPERIMENTS)) $(if $(SEED),--seed $(SEED))

bench-train-throughput: check-java install ## tile CNN loader/training samples/s: DCT parquet (Petastorm) vs JPEG decoding vs IDCT images -> bench/results/train_throughput.json
	$(PY) -m bench.train_throughput

bench-maps: check-java install ## whole-Europe 5 km species/richness GeoTIFFs (knn, geolocation-asl): time + peak RSS -> bench/results/maps.json
	$(PY) -m bench.maps

bench-pretraining: check-java install ## tile2vec / SatCLIP pretraining: triplet accuracy, transfer F1 vs untrained, retrieval km vs random, samples/s -> bench/results/pretraining.json
	$(PY) -m bench.pretraining --data-root $(DATA_ROOT) --out-root $(OUT_ROOT)

bench-rf: check-java install ## random forest (GLC2020) fit time, tree memory and peak RSS per setting on DATA_ROOT -> bench/results/random_forest.json
	$(PY) -m bench.random_forest --data-root $(DATA_ROOT) --out-root $(OUT_ROOT)

bench-fusion: check-java install ## fusion ablation (concat -> +temporal Swin -> +GFV -> +HCAM -> +mixup -> +k-fold -> decoders -> +PO correction) -> bench/results/fusion_ablation.json
	$(PY) -m bench.fusion_ablation $(if $(ROWS),--rows $(ROWS))

bench-fusion-feed: check-java install ## fusion image branch fed by raw pixels vs the full DCT (IDCT) vs the 16x16 block: samples/s -> bench/results/fusion_feed.json
	$(PY) -m bench.fusion_feed

gpu-table: check-java install ## the full world's fusion table packed for a GPU lease (world generated if missing, ModelInputs + PO correction via Luigi, ~36 min the first time; FULL_ROOT, GPU_TABLE=.gpu/full.npz) -> GPU_TABLE + its .json (paths for merge)
	$(PY) -m bench.gpu_table --data-root $(FULL_ROOT) --out $(or $(GPU_TABLE),.gpu/full.npz)

bench-table-load: install ## one thread vs all cores: unpacking the packed GPU table and loading its train split into tensors; a k-fold fold's two views from two reads vs one (NPZ=.gpu/full.npz from make gpu-table) -> bench/results/table_load.json
	$(PY) -m bench.table_load --npz $(or $(NPZ),.gpu/full.npz)

show: install ## print the report summary and output paths of EXPERIMENT
	$(PY) -m glc show --experiment $(EXPERIMENT) --data-root $(DATA_ROOT) --out-root $(OUT_ROOT)

synth-tiny: install ## generate the tiny synthetic world (tests use it)
	$(PY) -m glc synth --scale tiny --seed 0

synth-demo: install ## generate the demo synthetic world
	$(PY) -m glc synth --scale demo --seed 0

clean: ## remove artifacts (out/) but keep generated worlds and the venv
	rm -rf $(OUT_ROOT)
