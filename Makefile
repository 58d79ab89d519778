# Two commands: `make dev` runs exportd on embedded servers, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint typecheck pytest test-unit test-api test-process test-browser clean nginx \
	chromium zstd bench bench-quick bench-replicas bench-queue bench-deps screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,test]'
	touch $(STAMP)

# make dev PORT=9000 DATA_DIR=/tmp/exportd-dev: another port or data folder.
dev: $(STAMP)
	$(BIN)/exportd dev $(if $(PORT),--port $(PORT)) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# Two workers, each a whole test file at a time (its module fixtures stay together) and a
# stack of servers of its own: most tests wait on leases, backoffs and processes, not CPU.
pytest: $(STAMP) nginx chromium
	$(BIN)/pytest -n 2 --dist loadfile

# The README's pictures: docs/screenshots/ (page.png and the page's other steps, cli.svg) made
# afresh by the two tests that take them. Other runs write them to pytest's tmp folder.
screenshots: $(STAMP) nginx chromium
	EXPORTD_SCREENSHOTS=docs/screenshots $(BIN)/pytest tests/browser/test_browser.py \
		tests/process/test_client_cli.py::test_progress_on_a_terminal_advances_and_makes_the_screenshot

# The tiers on their own: no servers; the app in-process on real servers; real processes.
test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

test-api: $(STAMP)
	$(BIN)/pytest tests/api

test-process: $(STAMP) nginx
	$(BIN)/pytest tests/process

test-browser: $(STAMP) nginx chromium
	$(BIN)/pytest tests/browser

# The replica tests put nginx (Debian's nginx-light) in front of exportd; install it if missing.
nginx:
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || (apt-get update && apt-get install -y nginx-light)

# The web page's tests drive Debian's chromium (Playwright cannot download its browsers here).
chromium:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# Export speed against COPY and a user's script, same query, one run: ~1.2 GB of CSV.
bench: $(STAMP) zstd
	$(BIN)/python -m bench.export_bench --rows 10000000

# The same at 300,000 rows, under a minute; then the queue side's small version (~1.5 min).
bench-quick: $(STAMP) zstd bench-deps
	$(BIN)/python -m bench.export_bench --rows 300000
	$(BIN)/python -m bench.queue_bench --quick

# The queue side against bare asyncpg loops, PgQueuer's own benchmark and NOTIFY: medians of
# 3 alternating rounds (~15 min); results in bench/results/.
bench-queue: $(STAMP) bench-deps
	$(BIN)/python -m bench.queue_bench

# PgQueuer (its sdist's benchmark script is a baseline) and py-spy, for the benchmarks only.
bench-deps: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,test,bench]'

# The benchmark's `COPY | zstd -1` baseline needs the zstd command (Debian package).
zstd:
	command -v zstd >/dev/null || (apt-get update && apt-get install -y zstd)

# 2,000 exports through nginx while replicas are killed; results in bench/results/.
bench-replicas: $(STAMP) nginx
	$(BIN)/python -m bench.replica_chaos --exports 2000 --replicas 3

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
