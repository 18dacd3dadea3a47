# Two commands for a newcomer: `make demo` (a video of the Go1 on the board) and `make test`.
# Both set up what they need: Debian packages for headless rendering and a virtual environment.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
# Headless OpenGL for MuJoCo's renderer (MUJOCO_GL=egl, or osmesa as a fallback).
SYSTEM_PACKAGES := libegl1 libgl1 libgl1-mesa-dri libosmesa6
# Quiet pip: warnings and errors only, no progress bars.
PIP_INSTALL := $(VENV)/bin/python -m pip --disable-pip-version-check install --quiet --quiet --progress-bar off
DEMO_OUT := outputs/demo

.PHONY: demo test system-deps

demo: system-deps $(VENV)/.installed-core
	MUJOCO_GL=egl $(VENV)/bin/dhal sim --policy scripted --seconds 8 --out $(DEMO_OUT)
	@echo "demo video: $(DEMO_OUT)/rollout.mp4"

# The type checker resolves `dhal.*` through the dhal/ links, as an installed package would.
test: system-deps $(VENV)/.installed-dev
	$(VENV)/bin/mypy
	MUJOCO_GL=egl $(VENV)/bin/python -m pytest -q

# Installs only the packages that are missing; does nothing off Debian.
system-deps:
	@if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then \
		echo "not a Debian system: make sure these (or their equivalents) are installed: $(SYSTEM_PACKAGES)"; \
		exit 0; \
	fi; \
	missing=""; \
	for package in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
		echo "installing system packages for headless rendering:$$missing"; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# torch first and pinned: with no torch present, the project's `torch>=...` would pull a
# multi-GB CUDA build, while torch==2.13.0 resolves to the CPU wheel these machines provide.
# The demo needs only the core; the tests also need the deploy stack (ONNX Runtime, MCAP, ROS 2
# wheels), MuJoCo Warp (its parity tests run on the CPU) and the test tools: the `dev` extra.
$(VENV)/.installed-core: pyproject.toml
	@test -x $(VENV)/bin/python || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-core
	$(PIP_INSTALL) -e '.[dev]'
	@touch $@
