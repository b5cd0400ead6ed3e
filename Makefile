# mlops-operator: `make demo` runs the local pipeline, `make test` runs every test.
# Both install what they need: a Python venv, iproute2, nftables (kube-proxy), prometheus (+ promtool), lua5.4 (Argo CD health-check tests),
# and the control plane built from Go modules.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STATE_DIR ?= .localcluster
# Test workers beside each other on the one local cluster: cluster tests mostly wait on reconciles, pods and
# MLflow, so more workers than the 2 cores still shortens the run; outage tests then run alone.
TEST_WORKERS ?= 4
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install system-deps binaries images crds lint unit integration test demo cluster-up cluster-down cluster-status clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

system-deps:
	@command -v ip >/dev/null 2>&1 && command -v nft >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 && command -v lua5.4 >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iproute2 nftables prometheus lua5.4 >/dev/null; }
	@command -v go >/dev/null 2>&1 || { echo "Go >= 1.26 is needed to build the control plane (https://go.dev/dl)"; exit 1; }

install: system-deps $(VENV)/.installed

binaries: system-deps
	@bash hack/build-binaries.sh >/dev/null

# The three images (images/*/Dockerfile) with buildah into ~/.cache/mlops-operator/containers, from a local
# debootstrap base; the node agent runs pods from them (docs/images.md).
images:
	@bash hack/build-images.sh

crds: install
	$(BIN)/mlops-operator crds

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mlops-operator crds --check

unit: install
	$(BIN)/pytest tests/unit -q -n 2

integration: install binaries
	$(BIN)/pytest tests/integration -q -n $(TEST_WORKERS) --dist worksteal

# The session fixture brings the local cluster up (or reuses a healthy one) and leaves it
# running so the next run is warm; `make cluster-down` stops it.
test: install binaries images lint
	$(BIN)/pytest tests -m "not outage and not alone" -n $(TEST_WORKERS) --dist worksteal --durations 15
	$(BIN)/pytest tests -m "outage or alone" --durations 0

cluster-up: install binaries
	$(BIN)/mlops-operator cluster up --state-dir $(STATE_DIR)

cluster-down: install
	$(BIN)/mlops-operator cluster down --state-dir $(STATE_DIR)

cluster-status: install
	$(BIN)/mlops-operator cluster status --state-dir $(STATE_DIR)

demo: images cluster-up
	@bash hack/demo.sh $(STATE_DIR)

clean: cluster-down
	rm -rf $(VENV) $(STATE_DIR) .pytest_cache .ruff_cache
