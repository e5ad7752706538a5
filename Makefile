# Two entry points: `make run` (the main job on the bundled sample) and `make test`.
# Both create their own virtual environment in $(VENV).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# A fixed CPU build of PyTorch; see README for other machines.
TORCH ?= torch==2.13.0
XVFB := xvfb-run -a -s "-screen 0 1600x1000x24"

.PHONY: setup system-deps run run-headless test test-models-avx2 bench docs-screenshots clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[all,test]"
	touch $@

setup: $(BIN)/.installed

system-deps:
	bash scripts/install-system-deps.sh

# Opens napari on the bundled sample. Without a display it runs under Xvfb and
# writes out/atombench-run.png instead.
run: setup
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		$(BIN)/atombench view; \
	else \
		$(MAKE) --no-print-directory run-headless; \
	fi

run-headless: setup system-deps
	$(XVFB) $(BIN)/atombench view --screenshot out/atombench-run.png

test: setup system-deps
	$(BIN)/python -m pytest

# The model tests again on other oneDNN/ATen kernels (AVX2 instead of AVX-512/AMX):
# fp32 sums come out in other orders, which catches tests that assume last bits.
test-models-avx2: setup
	ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 $(BIN)/python -m pytest tests/test_models_*.py tests/test_finetune.py tests/test_contrast_sampling.py tests/test_train*.py

bench: setup
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) out .pytest_cache
