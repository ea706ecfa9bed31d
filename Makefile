# `make help` lists every target. Each target installs what it needs into .venv first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
ATFT := $(VENV)/bin/atft
STAMP := $(VENV)/.installed
RUN ?= runs/demo

.PHONY: help install tools demo data-demo test test-integration test-slow test-sp500 chart chart-readme wheel rules gitops pin-image lock scan lint bench clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv with atft and its dev tools

HELM := .tools/bin/helm
$(HELM): scripts/fetch_helm.py | $(STAMP)
	$(PY) scripts/fetch_helm.py

tools: $(HELM) ## the real external parts the integration tests use: helm (pinned, sha256-checked), Prometheus, checkov
	scripts/install_prometheus.sh
	scripts/image/install-tools.sh
	scripts/image/install-scanners.sh

demo: $(STAMP) ## the main job: train on the embedded synthetic market (CPU, minutes), then the report
	$(ATFT) train --out $(RUN) --overwrite
	@echo "report: $(RUN)/report.md"

data-demo: $(STAMP) ## the data layer alone: synthetic market -> feature panel -> data contract -> folds
	$(ATFT) data synth --out $(RUN)-data/panel.parquet --prices $(RUN)-data/prices.parquet --overwrite
	$(ATFT) data check $(RUN)-data/panel.parquet
	$(ATFT) data splits $(RUN)-data/panel.parquet

test: $(STAMP) ## lint, type-check and the fast CPU test suite
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -n 2 -q

test-integration: tools ## tests against real helm, promtool, Prometheus, Pushgateway, Alertmanager (CI runs them)
	$(VENV)/bin/pytest -n 2 -q -m integration

test-slow: $(STAMP) ## the slow-marked tests: SIGKILL/resume, SIGTERM, torchrun with 2 processes (CI runs them)
	$(VENV)/bin/pytest -n 2 -q -m slow

test-sp500: $(STAMP) ## the S&P 500 dev panel through the data layer (needs ../shared/data beside the clone; skips without)
	$(VENV)/bin/pytest -q -m sp500

chart: $(STAMP) $(HELM) ## the Helm chart: lint every scenario, validate every object, switch and render tests (needs only helm)
	$(PY) scripts/chart_readme.py --check
	$(VENV)/bin/pytest -q -m integration tests/chart

chart-readme: $(STAMP) ## regenerate helm/atft/README.md from the values.yaml comments (after editing values.yaml)
	$(PY) scripts/chart_readme.py

wheel: $(STAMP) ## build dist/atft-VERSION-py3-none-any.whl: the CLI with the chart and the shipped configs inside
	$(PY) -m pip wheel --no-deps --no-build-isolation -q -w dist .
	@ls dist/atft-*.whl

rules: tools ## alert rules: promtool check and the promtool unit tests
	promtool check rules helm/atft/files/alerts.yaml
	$(VENV)/bin/pytest -q -m integration tests/rules

gitops: $(STAMP) $(HELM) ## re-render k8s/rendered/ after changing a config, the overlay values or the chart
	ATFT=$(ATFT) scripts/gitops_render.sh

pin-image: $(STAMP) $(HELM) ## pin the prod overlay to IMAGE=REGISTRY/atft@sha256:... (the release step), re-render
	@test -n "$(IMAGE)" || { echo "usage: make pin-image IMAGE=REGISTRY/atft@sha256:<digest>" >&2; exit 2; }
	$(PY) scripts/image/pin_digest.py "$(IMAGE)"
	ATFT=$(ATFT) scripts/gitops_render.sh

lock: $(STAMP) ## re-resolve requirements/image-*.lock (hashed, one per image route) after a dependency change
	$(PY) scripts/image/lock.py

scan: tools ## checkov (offline) over every chart scenario and k8s/
	$(PY) scripts/security_scan.py

lint: $(STAMP) ## ruff + mypy only
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP) ## the data-layer benchmarks at full size (3,800 stocks x 1,250 days); minutes
	$(PY) benchmarks/bench_graph.py
	$(PY) benchmarks/bench_panel_load.py
	$(PY) benchmarks/bench_loader.py
	$(PY) benchmarks/bench_grad_monitor.py
	$(PY) benchmarks/bench_exporter_memory.py

clean: ## remove .venv and runs/
	rm -rf $(VENV) runs
