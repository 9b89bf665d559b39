# Two commands: `make demo` trains a small GPT on tiny Shakespeare and samples from it;
# `make test` runs the test suite. Both create .venv with pinned versions first.
# `make test-slow` runs the tests `make test` leaves out as slow.
# `make test-hf` adds the optional torch + transformers extra (~1 GB, CPU wheel) and runs the
# Hugging Face parity tests, which `make test` skips without it.
# `make test-eval` adds the optional lm-evaluation-harness extra (requirements-eval.lock) and runs
# the harness tests (`experiments.evaluate --tasks`, a sweep's `scaling.eval_tasks`), which `make
# test` skips without it.
# `make tensorboard WORKDIR=runs/x` adds the optional TensorBoard extra and serves a run's (or a
# folder of runs') event files on http://localhost:$(PORT).
# `make test-beam` builds .venv-beam (Apache Beam, requirements-beam.lock) and tests the data
# preparation on several Beam workers, which `make test` skips without Beam.
# `make lint` adds ruff and pyright (requirements-lint.lock) and checks lint, format and types.
# `make scaling-cpu` runs the CPU scaling study ($(SCALING_CONFIG), default
# experiments/configs/scaling_cpu.py) into $(SCALING_DIR): the sweep, a fit that predicts the
# optimum at 4x its largest budget, the verification run of that prediction, and the fit again
# with it (plots in $(SCALING_DIR)/plots). The μP variant: SCALING_CONFIG=
# experiments/configs/scaling_cpu_mup.py SCALING_DIR=runs/scaling_cpu_mup.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/shakespeare_char
PORT ?= 6006
SCALING_CONFIG ?= experiments/configs/scaling_cpu.py
SCALING_DIR ?= runs/scaling_cpu
SCALING_FIT = $(PY) -m experiments.fit_scaling --results=$(SCALING_DIR)/results.csv \
	--plots_dir=$(SCALING_DIR)/plots --predict_flops=1e13

.PHONY: demo test test-slow test-hf test-eval test-beam lint tensorboard scaling-cpu clean

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

demo: $(VENV)/.installed
	$(PY) -m experiments.train --config=experiments/configs/shakespeare_char.py --workdir=$(WORKDIR)
	$(PY) -m experiments.sample --workdir=$(WORKDIR) --prompt="ROMEO:" --max_new_tokens=300

# Two test processes (pytest-xdist), each taking the next test as it finishes one.
PYTEST := $(PY) -m pytest -q -n 2 --dist worksteal

# `make test` leaves out the tests marked slow (multi-process faults, end-to-end sweeps, a
# layout on a loaded machine); `make test-slow` runs them; CI runs both.
test: $(VENV)/.installed
	$(PYTEST) -m "not slow"

test-slow: $(VENV)/.installed
	$(PYTEST) -m slow

$(VENV)/.installed-hf: $(VENV)/.installed requirements-hf.lock
	$(PY) -m pip install --quiet -r requirements-hf.lock
	touch $@

# With the eval extra too: lm-eval's own `hf` backend reads our exports (tests/convert).
test-hf: $(VENV)/.installed-hf $(VENV)/.installed-eval
	$(PYTEST) tests/convert tests/data/test_hf_tokenizers.py

# lm-evaluation-harness (no torch); its tests on a Hugging Face or Llama-family directory also
# need the hf extra, and skip without it.
$(VENV)/.installed-eval: $(VENV)/.installed requirements-eval.lock
	$(PY) -m pip install --quiet -r requirements-eval.lock -c requirements.lock
	touch $@

test-eval: $(VENV)/.installed-eval
	$(PYTEST) tests/infer/test_harness.py tests/scaling/test_sweep_tasks.py

# Data preparation on Apache Beam's workers: an environment of its own (.venv-beam,
# requirements-beam.lock), as Beam needs an older protobuf than .venv's transformers.
BEAM_VENV := .venv-beam
$(BEAM_VENV)/.installed: requirements-beam.lock pyproject.toml
	$(PYTHON) -m venv $(BEAM_VENV)
	$(BEAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BEAM_VENV)/bin/python -m pip install --quiet -r requirements-beam.lock
	$(BEAM_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $@

test-beam: $(BEAM_VENV)/.installed
	$(BEAM_VENV)/bin/python -m pytest -q -n 2 --dist worksteal tests/data/test_prepare_beam.py

$(VENV)/.installed-lint: $(VENV)/.installed requirements-lint.lock
	$(PY) -m pip install --quiet -r requirements-lint.lock
	touch $@

lint: $(VENV)/.installed-lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pyright

$(VENV)/.installed-tb: $(VENV)/.installed requirements-tb.lock
	$(PY) -m pip install --quiet -r requirements-tb.lock
	touch $@

tensorboard: $(VENV)/.installed-tb
	$(VENV)/bin/tensorboard --logdir=$(WORKDIR) --port=$(PORT)

scaling-cpu: $(VENV)/.installed
	$(PY) -m experiments.sweep --config=$(SCALING_CONFIG) \
		--workdir=$(SCALING_DIR) --workers=2
	$(SCALING_FIT)
	$(PY) -m experiments.sweep --config=$(SCALING_CONFIG) \
		--workdir=$(SCALING_DIR) --verify
	$(SCALING_FIT)

clean:
	rm -rf $(VENV) $(BEAM_VENV) runs
