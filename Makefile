# Quick start (see README): `make app` runs the dashboard, `make test` runs the whole test suite.
# Both create .venv on first use; everything installs from the package registries.
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: app test lint bench gallery clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

app: $(VENV)/.runtime  # a fresh server loads the shipped gallery (assets/gallery) and prepares what it lacks
	DPCORE_DEMO_AUTOPREPARE=1 $(PY) -m streamlit run app.py --server.port $(PORT)

$(VENV)/.ray: requirements-ray.txt $(VENV)/.runtime
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-ray.txt
	touch $@

test: $(VENV)/.dev $(VENV)/.ray  # Ray is optional for users; the tests start a local one (2 CPUs)
	bash .ci/ensure_chromium.sh
	bash .ci/ensure_nginx.sh
	$(PY) -m ruff check .
	$(PY) -m pytest -q

# Rebuild the shipped demo gallery: train it afresh in a throw-away data folder (a few minutes on a CPU),
# then write assets/gallery from it. Rerun when tests/runs/test_gallery_snapshot.py says it is out of date.
gallery: $(VENV)/.runtime
	set -e; data=$$(mktemp -d); trap 'rm -rf "$$data"' EXIT; \
	$(PY) -m dpcore demo prepare --data-dir "$$data"; \
	$(PY) -m dpcore demo snapshot --data-dir "$$data" --out assets/gallery

bench: $(VENV)/.runtime
	$(PY) bench/bench_engines.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
