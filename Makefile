# tracklift: the two commands a newcomer needs are `make run` and `make test`.
# Both create .venv and install everything into it on first use (about 3 minutes on a fresh machine).
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.tracklift-installed
# The exact versions of everything below (pyproject.toml holds ranges): one list, used by every pip call.
CONSTRAINTS := constraints.txt
# Extra arguments for the main job, e.g. `make run ARGS="--scenes 4"`.
ARGS   ?=
# Extra arguments for pytest, e.g. `make test PYTEST_ARGS="-m 'not slow'"`.
PYTEST_ARGS ?=

.PHONY: install run test lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS) Makefile
	@command -v $(PYTHON) >/dev/null || { echo "tracklift needs $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel
	# torch first, pinned as a pair with torchvision in constraints.txt (see README "GPU install")
	$(PIP) install --quiet -c $(CONSTRAINTS) torch torchvision
	# open3d (the `synth` extra: TSDF fusion of synthetic scans) needs Debian's libusb-1.0-0 to import
	@if command -v dpkg >/dev/null && ! dpkg -s libusb-1.0-0 >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y libusb-1.0-0; \
	  else echo "open3d needs libusb-1.0-0: sudo apt-get install -y libusb-1.0-0"; exit 1; fi; \
	fi
	$(PIP) install --quiet -c $(CONSTRAINTS) -e '.[full,client,dev,synth]'
	# sam2 is source-only on PyPI and must build against the torch above (its CUDA extension is optional)
	SAM2_BUILD_CUDA=0 $(PIP) install --quiet -c $(CONSTRAINTS) --no-build-isolation sam2 hydra-core iopath
	# Sparse-convolution backends (README "Sparse-convolution backends"). MinkowskiEngine 0.5.4 is source-only:
	# it builds CPU-only against the torch above and links OpenBLAS (about 11 min once; pip caches the wheel).
	@if command -v dpkg >/dev/null && ! dpkg -s libopenblas-dev >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y libopenblas-dev; \
	  else echo "MinkowskiEngine needs libopenblas-dev: sudo apt-get install -y libopenblas-dev"; exit 1; fi; \
	fi
	SETUPTOOLS_USE_DISTUTILS=stdlib MAX_JOBS=2 $(PIP) install --quiet -c $(CONSTRAINTS) --no-build-isolation MinkowskiEngine
	# spconv's CPU wheel (forward only on CPU); CUDA 12 machines install spconv-cu126 instead (same module)
	$(PIP) install --quiet -c $(CONSTRAINTS) spconv
	touch $(STAMP)

run: install
	$(VENV)/bin/tracklift run $(ARGS)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: install
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

bench: install
	$(PY) benchmarks/bench_synth.py
	$(PY) benchmarks/bench_eval_speed.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

# ---- Container image (Dockerfile, docs/deployment.md). The tag is derived here and only here, from
# pyproject.toml's version; every manifest in cluster/ names $(IMAGE_CUDA) (tests/cluster/test_manifests.py).
VERSION      := $(shell awk -F'"' '/^version = /{print $$2; exit}' pyproject.toml)
IMAGE        ?= tracklift:$(VERSION)
IMAGE_CUDA   ?= $(IMAGE)-cuda
# The Dockerfile's TORCH_VARIANT for the CUDA image: cu130 is PyPI's own torch wheel; cu126 / cu128 come from
# PyTorch's index (for NVIDIA drivers older than 580).
TORCH_VARIANT_CUDA ?= cu130
DOCKER       ?= docker
# The registry the cluster pulls from, e.g. 123456789012.dkr.ecr.us-west-2.amazonaws.com or ghcr.io/you
REGISTRY     ?=
# Where `make cluster-manifests` writes cluster/*.yaml with the image under $(REGISTRY)
CLUSTER_OUT  ?= build/cluster

.PHONY: image image-cuda image-push cluster-manifests image-names

image:
	$(DOCKER) build --build-arg TORCH_VARIANT=cpu --build-arg TRACKLIFT_VERSION=$(VERSION) \
	  -t $(IMAGE) -f Dockerfile .

image-cuda:
	$(DOCKER) build --build-arg TORCH_VARIANT=$(TORCH_VARIANT_CUDA) --build-arg TRACKLIFT_VERSION=$(VERSION) \
	  -t $(IMAGE_CUDA) -f Dockerfile .

image-push:
	@test -n "$(REGISTRY)" || { echo "set REGISTRY=<registry host/path> to push $(IMAGE_CUDA)"; exit 1; }
	$(DOCKER) tag $(IMAGE_CUDA) $(REGISTRY)/$(IMAGE_CUDA)
	$(DOCKER) push $(REGISTRY)/$(IMAGE_CUDA)

cluster-manifests:
	@test -n "$(REGISTRY)" || { echo "set REGISTRY=<registry host/path> the cluster pulls $(IMAGE_CUDA) from"; exit 1; }
	mkdir -p $(CLUSTER_OUT)
	for f in cluster/*.yaml; do \
	  sed 's#^\([[:space:]-]*image:[[:space:]]*\)$(IMAGE_CUDA)[[:space:]]*$$#\1$(REGISTRY)/$(IMAGE_CUDA)#' "$$f" \
	    > "$(CLUSTER_OUT)/$$(basename "$$f")"; \
	done

image-names:
	@echo "IMAGE=$(IMAGE)"
	@echo "IMAGE_CUDA=$(IMAGE_CUDA)"
	@echo "TORCH_VARIANT_CUDA=$(TORCH_VARIANT_CUDA)"
