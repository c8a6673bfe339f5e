# The two commands a newcomer needs:   make run   (start the server)   make test   (run everything)
VENV ?= .venv
PORT ?= 8443
PYTHON ?= python3
STAMP := $(VENV)/.installed-stamp
# The real az CLI, in its own environment (its pins conflict with ours), for tests/az.
AZ_VENV ?= .venv-az
AZ_STAMP := $(AZ_VENV)/.installed-stamp
AZ_VERSION ?= 2.91.0

.PHONY: run test check lint bench conformance resolve-localhost

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

$(AZ_STAMP):
	$(PYTHON) -m venv $(AZ_VENV)
	$(AZ_VENV)/bin/pip install --quiet azure-cli==$(AZ_VERSION)
	touch $@

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
	$(VENV)/bin/ruff format --check src tests bench conformance
	$(VENV)/bin/ruff check src tests bench conformance
	$(VENV)/bin/mypy src

test: $(STAMP) $(AZ_STAMP) resolve-localhost lint
	STRONGROOM_AZ=$(CURDIR)/$(AZ_VENV)/bin/az $(VENV)/bin/pytest
	$(VENV)/bin/python conformance/run.py

# The Azure SDK's own keyvault test suites, live against a fresh server (docs/conformance.md).
conformance: $(STAMP) resolve-localhost
	$(VENV)/bin/python conformance/run.py

bench: $(STAMP) resolve-localhost
	$(VENV)/bin/python bench/secrets_throughput.py
