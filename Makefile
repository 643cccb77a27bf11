# instafilters: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
CLI := $(VENV)/bin/instafilters
SAMPLE := instafilters/data/sample
SRC ?= $(SAMPLE)
OUT ?= build/dataset-ig

.PHONY: help install install-test install-eval test test-all demo sample dataset bench fidelity recipes preview docs clean

help:
	@echo "make demo      install, build the bundled sample and evaluate EfficientNet-Lite0 on it"
	@echo "make test      install and run the test suite (without the slow checks)"
	@echo "make test-all  the test suite with the slow checks (what CI runs)"
	@echo "make sample    build the bundled sample tree into build/sample-ig/"
	@echo "make dataset SRC=imagenet/ OUT=imagenet-ig/   build any tree"
	@echo "make bench     filter and build throughput against the decode+encode floor"
	@echo "make fidelity  CIEDE2000 of every calibrated filter against real Instagram output"
	@echo "make recipes   refit filters.yaml from ../shared/calibration (or \$$INSTAFILTERS_SHARED)"
	@echo "make preview   contact sheet of a bundled photo under all 20 filters"
	@echo "make docs      regenerate the README's pictures (docs/)"

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: $(VENV)/bin/activate setup.cfg pyproject.toml
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/bin/activate setup.cfg pyproject.toml
	$(PIP) install -q -e '.[test,eval]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-eval

$(VENV)/.installed-eval: $(VENV)/bin/activate setup.cfg pyproject.toml
	$(PIP) install -q -e '.[eval]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
install-eval: $(VENV)/.installed-eval

# setup.cfg leaves out the tests marked slow (refitting recipes, full fidelity on the
# calibration photo: about 35 s); test-all runs them too, and is what .ci/run runs.
test: install-test
	$(PY) -m pytest -q

test-all: install-test
	$(PY) -m pytest -q -m "slow or not slow"

preview: install
	$(CLI) preview $(SAMPLE)/val/n03877845/china.JPEG -o build/preview.jpg

sample: install
	$(CLI) build --src $(SAMPLE) --out build/sample-ig

dataset: install
	$(CLI) build --src $(SRC) --out $(OUT)

# The pictures in README.md: the contact sheet and the demo's accuracy chart
docs: demo
	$(CLI) preview $(SAMPLE)/val/n03877845/china.JPEG -o docs/preview.jpg --width 200
	cp build/demo-report/top1.png docs/demo-top1.png

clean:
	rm -rf build bench-out /dev/shm/instafilters-bench

# --overwrite: the demo always shows the current recipes, even after `make recipes`
demo: install-eval
	$(CLI) build --src $(SAMPLE) --out build/sample-ig --overwrite
	$(CLI) eval efficientnet_lite0 --data build/sample-ig --clean $(SAMPLE) --report build/demo-report

# Filter cost vs Pillow's decode+encode, then build throughput on tmpfs vs the Pillow and
# libjpeg-turbo floors and pilgram (alternating, best of two, 2 processes), 1 -> 2 jobs, peak
# memory (issue 10's definitions; benchmarks/bench_build.py). About five minutes on two cores.
# pilgram is installed for the comparison only; numba ('fast' extra) is what users get.
BENCH_IMAGES ?= 1000
bench: install
	$(PIP) install -q -e '.[fast]' pilgram psutil
	$(PY) benchmarks/bench_filters.py
	$(PY) benchmarks/bench_build.py --images $(BENCH_IMAGES)
	$(PY) benchmarks/bench_onthefly.py

# Both read the calibration pairs from $INSTAFILTERS_SHARED/calibration, else ../shared/calibration
fidelity: install
	$(CLI) fidelity

recipes: install
	$(PY) tools/make_recipes.py
