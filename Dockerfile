# syntax=docker/dockerfile:1
# tracklift's image: the one every manifest in cluster/ runs. Build it through the Makefile, which derives the
# tag from pyproject.toml's version (docs/deployment.md has the whole story, including what is not verified):
#   make image         ->  tracklift:<version>        TORCH_VARIANT=cpu   (CPU-only torch, no CUDA libraries)
#   make image-cuda    ->  tracklift:<version>-cuda   TORCH_VARIANT=cu130 (what cluster/*.yaml run)
# The install step is `make install`, the same target a developer runs: one list of packages and pins.
#
# Base: plain Debian Python rather than rayproject/ray. Ray comes from pyproject.toml's pin (ray==2.60.0, the
# rayVersion the manifests declare), torch's wheels bring their own CUDA runtime from PyPI, so a CUDA base
# image would only add a second, unused CUDA; and `make install` wants `python3.11 -m venv` and dpkg, which
# this image has as a developer's machine does. Bookworm's glibc 2.36 satisfies open3d-cpu's manylinux_2_35.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

# cpu: torch from download.pytorch.org/whl/cpu; cu126 / cu128: from download.pytorch.org/whl/cu12x;
# cu130: PyPI's own torch==2.14.1 Linux wheel, which is the CUDA 13.0 build (needs an NVIDIA driver >= 580).
ARG TORCH_VARIANT=cpu
# spconv's CUDA package for the GPU variants (a CUDA 12.6 build; spconv's wheels do not depend on torch's
# version). Its version is not pinned here: it is the version of the CPU spconv that `make install` put in.
ARG SPCONV_CUDA=spconv-cu126
ARG TRACKLIFT_VERSION=unknown

LABEL org.opencontainers.image.title="tracklift" \
      org.opencontainers.image.description="Class-agnostic 3D instance segmentation on Ray (label, train, serve)" \
      org.opencontainers.image.version="${TRACKLIFT_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      ai.tracklift.torch-variant="${TORCH_VARIANT}"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH}

# What `make install` expects of a developer's machine (a C++ compiler for MinkowskiEngine, make), and what
# runs inside the container from outside: KubeRay's health probes call wget; the cluster launcher starts
# `bash` and copies its bootstrap files in with `rsync -e 'docker exec -i'`.
# The toolchain stays (a few per cent of the image): purging it after `make install` is likely safe, but the
# image could not be built here to check that nothing built or JIT-compiled at run time needs it.
# Package versions float within the pinned Debian release (bookworm) on purpose: exact Debian versions
# vanish from the mirror at the next security update and would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential make wget rsync ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# The runtime user (uid 1000, home /home/ray as in Ray's own images: the cluster launcher mounts the auth
# token at /home/ray/.ray/auth_token). The sources and the venv stay root-owned: read-only to the job.
RUN useradd --create-home --uid 1000 --shell /bin/bash ray

WORKDIR /opt/tracklift
COPY . /opt/tracklift

# `make install` as root: it apt-installs the project's own Debian packages (libusb-1.0-0 for open3d,
# libopenblas-dev for MinkowskiEngine) only when it runs as root, then fills the venv. The pip cache is a
# BuildKit cache mount, so a rebuild reuses MinkowskiEngine's wheel (its source build takes about 11 minutes)
# and the image keeps no cache. The torch variant is chosen by the index pip sees, not by editing the pins:
# PyTorch's indexes serve torch==2.14.1 as 2.14.1+cpu / +cu12x, which `torch==2.14.1` accepts and pip prefers.
# For the CUDA variants, spconv's CPU wheel (from `make install`) is swapped for its CUDA wheel: both provide
# the same module, so never keep both; the CUDA wheel gets the CPU wheel's version (DL3013: pinned that way).
# Last, the torch build is checked against the variant: when PyTorch's index lacks the requested build, pip
# would quietly take PyPI's CUDA 13.0 wheel instead.
# hadolint ignore=DL3013
RUN --mount=type=cache,target=/root/.cache/pip \
    case "${TORCH_VARIANT}" in \
      cu130) ;; \
      cpu|cu126|cu128) export PIP_EXTRA_INDEX_URL="https://download.pytorch.org/whl/${TORCH_VARIANT}" ;; \
      *) echo "TORCH_VARIANT must be cpu, cu126, cu128 or cu130, not '${TORCH_VARIANT}'" >&2; exit 1 ;; \
    esac \
 && make install PYTHON=python3.11 VENV=/opt/venv \
 && if [ "${TORCH_VARIANT}" != cpu ]; then \
      spconv_version="$(pip show spconv | awk '/^Version:/ {print $2}')" \
      && pip uninstall --yes spconv cumm \
      && pip install --quiet "${SPCONV_CUDA}==${spconv_version}"; \
    fi \
 && python -c "import os, torch; want = {'cpu': None, 'cu126': '12.6', 'cu128': '12.8', 'cu130': '13.0'}; \
      got = torch.version.cuda; assert got == want[os.environ['TORCH_VARIANT']], f'torch is CUDA {got}'" \
 && python -m compileall -q src/tracklift \
 && rm -rf /var/lib/apt/lists/*

# KubeRay and the cluster launcher may start `bash -l`, whose /etc/profile resets PATH: put the venv back
# (single quotes on purpose: $PATH expands at login, not now).
# hadolint ignore=SC2016
RUN printf 'export VIRTUAL_ENV=/opt/venv\nexport PATH=/opt/venv/bin:$PATH\n' > /etc/profile.d/tracklift.sh
# The NVIDIA container runtime injects the driver's compute libraries only when asked to (CUDA variants).
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility

# Numeric, so Kubernetes' runAsNonRoot can check it without reading the image's /etc/passwd.
USER 1000:1000
WORKDIR /home/ray
# Cluster manifests override the command (ray start, the job's entrypoint); alone, the image is the CLI.
CMD ["tracklift", "--help"]
