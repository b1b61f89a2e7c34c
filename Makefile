# Two commands do everything on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch is installed first and pinned: on the project's machines this release lies on local disk.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: venv lint format test test-fast demo demo-batch clean test-postgres test-milvus

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Lint and format check (ruff, configured in pyproject.toml); `make format` rewrites in place.
lint: $(STAMP)
	$(VENV)/bin/ruff check mmsearch tests benchmarks
	$(VENV)/bin/ruff format --check mmsearch tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff check --fix mmsearch tests benchmarks
	$(VENV)/bin/ruff format mmsearch tests benchmarks

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# The store, indexer, search, job and API tests again, each library in a database of its own on
# the PostgreSQL server MMSEARCH_TEST_POSTGRES_URL names (a role that may create databases).
test-postgres: $(STAMP)
	@test -n "$$MMSEARCH_TEST_POSTGRES_URL" || { echo "set MMSEARCH_TEST_POSTGRES_URL (.ci/postgres prints one)"; exit 2; }
	MMSEARCH_TEST_DATABASE=postgresql $(PY) -m pytest -q tests/storage tests/indexer tests/search tests/services tests/api

# The search tests again, each library's vectors in Milvus Lite (milvus.db in its folder) instead
# of FAISS files, and the Milvus backend's own tests.
test-milvus: $(STAMP)
	MMSEARCH_TEST_VECTOR_BACKEND=milvus $(PY) -m pytest -q tests/search tests/storage/test_milvus_index.py

demo: $(STAMP)
	$(VENV)/bin/mmsearch demo

demo-batch: $(STAMP)
	$(VENV)/bin/mmsearch demo --no-serve

clean:
	rm -rf $(VENV) demo-library .pytest_cache
