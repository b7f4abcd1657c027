# chromata — the two commands a fresh machine needs: `make demo` and `make test`.
PY ?= python3
PIP := $(PY) -m pip
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup demo test lint train clean

setup:  ## install chromata with its dev tools (torch 2.13.0 CPU wheel first, so nothing pulls CUDA)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[dev]"

demo: setup  ## colorize the bundled sample of grey scans into ./colorized
	chromata run examples/scans --out colorized
	chromata review list --out colorized

test: setup  ## lint, type-check and run the whole test suite (what CI runs)
	ruff check .
	mypy
	$(PY) -m pytest

train: setup  ## retrain the built-in model on ../shared/data/photos (about an hour on 2 CPU cores)
	chromata train --data ../shared/data/photos --out trained-model --steps 4000 --crop 160 --batch-size 12

clean:
	rm -rf colorized trained-model .pytest_cache .mypy_cache .ruff_cache
