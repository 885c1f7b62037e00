# Downlink. The two set-up commands: `make up` (stack + sample run) and `make test` (all tests).
SHELL := /bin/bash
.DEFAULT_GOAL := help
.PHONY: test-unit-config test-unit-contract test-podman podman-e2e-project
.PHONY: bench help bootstrap build env up up-celery backfill test-e2e-celery down logs ps info check deploy try import-crontab test test-unit test-unit-astro test-unit-airflow test-unit-docker-proxy test-e2e test-e2e-main test-e2e-faults e2e-projects lint lock clean

TAG := $(shell tools/image-tag.sh)
export DOWNLINK_TAG := $(TAG)
COMPOSE := docker compose
# Podman as the engine (DOWNLINK_ENGINE=podman, or podman installed and dockerd not; docs/install.md):
# every docker/compose command here then talks to Podman's Docker-compatible API on its own socket.
ifndef DOCKER_HOST
ifeq ($(shell tools/bootstrap.sh engine-kind),podman)
export DOCKER_HOST := $(shell tools/bootstrap.sh podman-host)
endif
endif
VENV := .venv
PYTEST_FLAGS ?= -q -p no:cacheprovider -rs --durations=15

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

bootstrap:  ## Docker engine, Compose v2, base image, wheelhouse (idempotent)
	@tools/bootstrap.sh all

build: bootstrap  ## build the images, tagged with the git commit
	@tools/build-images.sh $(TAG)

# EXECUTOR=celery|local switches the stack's executor (kept in .env as COMPOSE_FILE until switched).
env:
	@EXECUTOR=$(EXECUTOR) tools/make-env.sh $(TAG)

up: build env  ## start the stack and run the daily chain on the sample night
	@echo "starting the stack (tag $(TAG)) ..."
	@$(COMPOSE) up -d --wait --remove-orphans
	@tools/dagrun.py daily_chain --sample-night --timeout 1800
	@tools/show-access.sh

up-celery:  ## the stack on the CeleryExecutor: Redis broker, DOWNLINK_WORKERS workers (default 2)
	@$(MAKE) --no-print-directory up EXECUTOR=celery

# make backfill FROM=YYYY-MM-DD TO=YYYY-MM-DD [PARALLEL=n] [CHAIN=name]: nights FROM..TO of a
# chain (default daily_chain), n runs at once
backfill:  ## reprocess nights FROM..TO with Airflow's backfill, PARALLEL runs at once (default 2), CHAIN (default daily_chain)
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backfill FROM=YYYY-MM-DD TO=YYYY-MM-DD [PARALLEL=n] [CHAIN=daily_chain]" >&2; exit 2; }
	@# the running stack's tag (.env), not this checkout's
	@env -u DOWNLINK_TAG tools/backfill.py --from "$(FROM)" --to "$(TO)" --parallel "$(or $(PARALLEL),2)" --chain "$(or $(CHAIN),daily_chain)"

info:  ## print the addresses and logins of the running stack
	@tools/show-access.sh

down:  ## stop the stack (data volumes are kept)
	@$(COMPOSE) down --remove-orphans

clean:  ## stop the stack and DELETE its volumes (databases, archive, mail)
	@$(COMPOSE) down --remove-orphans --volumes

logs:  ## follow the services' logs
	@$(COMPOSE) logs -f --tail=100

ps:  ## the services and their health
	@$(COMPOSE) ps

# Web accounts (docs/operations.md "Accounts"), managed in the running api-server, which holds the users file.
.PHONY: user-add user-role user-reset user-remove user-list
ACCOUNTS = $(COMPOSE) exec -T api-server python -m downlink_airflow.accounts_cli
need-name = @test -n "$(NAME)" || { echo "usage: make $@ NAME=user$(1)" >&2; exit 2; }

user-add:  ## add a web account (NAME=alice ROLE=viewer|operator|admin); prints its generated password once
	$(call need-name, ROLE=viewer|operator|admin)
	@test -n "$(ROLE)" || { echo "usage: make $@ NAME=$(NAME) ROLE=viewer|operator|admin" >&2; exit 2; }
	@$(ACCOUNTS) add "$(NAME)" --role "$(ROLE)"

user-role:  ## change an account's role (NAME=alice ROLE=operator)
	$(call need-name, ROLE=viewer|operator|admin)
	@test -n "$(ROLE)" || { echo "usage: make $@ NAME=$(NAME) ROLE=viewer|operator|admin" >&2; exit 2; }
	@$(ACCOUNTS) set-role "$(NAME)" "$(ROLE)"

user-reset:  ## give an account a new generated password, printed once (NAME=alice)
	$(call need-name)
	@$(ACCOUNTS) reset-password "$(NAME)"

user-remove:  ## remove an account (NAME=alice); its sessions end at once
	$(call need-name)
	@$(ACCOUNTS) remove "$(NAME)"

user-list:  ## the web accounts and their roles
	@$(ACCOUNTS) list

.PHONY: backup restore housekeeping
backup:  ## dump the archive and Airflow databases into backups/<UTC time>/ (BACKUP_DIR=dir to choose); keeps the newest DOWNLINK_KEEP_BACKUPS
	@tools/backup.sh dump $(BACKUP_DIR)
	@tools/backup.sh prune $(BACKUP_DIR)

# make housekeeping [DRY_RUN=1]: run the housekeeping DAG now; DRY_RUN=1 only lists what it would delete
housekeeping:  ## prune old scratch, staging, quarantined bytes, metadata, task logs and mail now (DRY_RUN=1: only list)
	@# the running stack's tag (.env), not this checkout's
	@env -u DOWNLINK_TAG tools/dagrun.py housekeeping --timeout 1800 $(if $(filter 1 true yes,$(DRY_RUN)),--conf '{"dry_run": true}')

# make restore BACKUP=backups/<time> [INTO_NEW=suffix: only restore into archive_<suffix>, airflow_<suffix>]
restore:  ## restore a backup into the running stack (BACKUP=backups/<time>; INTO_NEW=name to only inspect it)
	@test -n "$(BACKUP)" || { echo "usage: make restore BACKUP=backups/<time> [INTO_NEW=suffix]" >&2; exit 2; }
	@tools/backup.sh restore "$(BACKUP)" $(if $(INTO_NEW),--into-new "$(INTO_NEW)")

# The Airflow image with this checkout's dags/ and plugins/, for the registry tools.
AIRFLOW_TOOL = docker run --rm --network none \
	  -v "$(CURDIR)/dags:/opt/airflow/dags:ro" -v "$(CURDIR)/plugins:/opt/airflow/plugins:ro"

# What `check` needs from .env (or the shell) to judge mounts: and secrets:, and the secrets
# folder itself, read-only at its own path (as in the stack), when it exists.
env_value = $(or $($(1)),$(shell sed -n 's/^$(1)=//p' .env 2>/dev/null | tail -n 1))
CHECK_SECRETS_DIR = $(call env_value,DOWNLINK_SECRETS_DIR)
CHECK_ENV = -e DOWNLINK_ALLOWED_MOUNTS="$(call env_value,DOWNLINK_ALLOWED_MOUNTS)" \
	  -e DOWNLINK_SECRETS_DIR="$(CHECK_SECRETS_DIR)" \
	  $(if $(and $(CHECK_SECRETS_DIR),$(wildcard $(CHECK_SECRETS_DIR))),-v "$(CHECK_SECRETS_DIR):$(CHECK_SECRETS_DIR):ro")

# The programs on the PATH of the astro image about to be deployed (its build writes the list),
# so that a command naming a program the image lacks is a problem naming the entry.
PATH_PROGRAMS = build/path-programs-$(TAG).txt
path-programs = mkdir -p build && docker run --rm downlink/astro:$(TAG) cat /usr/share/downlink/path-programs.txt \
	  >$(PATH_PROGRAMS).tmp && mv $(PATH_PROGRAMS).tmp $(PATH_PROGRAMS)
CHECK = $(AIRFLOW_TOOL) $(CHECK_ENV) -v "$(CURDIR)/$(PATH_PROGRAMS):/tmp/path-programs.txt:ro" downlink/airflow:$(TAG) \
	  python -m downlink_airflow.cli check --programs /tmp/path-programs.txt --image downlink/astro:$(TAG)

check: bootstrap  ## check the script registry (dags/registry.yaml) against the astro image: every problem, by entry and field
	@tools/build-images.sh $(TAG) airflow astro >/dev/null
	@$(path-programs)
	@$(CHECK)

deploy: build env  ## build, check, and roll the new tag into the running stack (running tasks go on)
	@$(path-programs)
	@$(CHECK) --quiet
	@tools/deploy.sh $(TAG)

# make try ENTRY=name [NIGHT=YYYY-MM-DD]: in the running stack's scheduler, which has the proxy, the
# secrets folder and the live dags/ (downlink_airflow.try_entry; Airflow's `tasks test`).
try:  ## run one registry entry once, now, in its container (ENTRY=name [NIGHT=YYYY-MM-DD]); exit code: the task's
	@test -n "$(ENTRY)" || { echo "usage: make try ENTRY=name [NIGHT=YYYY-MM-DD]   (in the running stack; make up)" >&2; exit 2; }
	@$(COMPOSE) exec -T scheduler python -m downlink_airflow.try_entry "$(ENTRY)" $(if $(NIGHT),--night "$(NIGHT)")

# make import-crontab CRONTAB=path/to/crontab [INTO=dags/registry.yaml] [SCRIPTS=dir] [ARGS=--skip-unsupported]
# SCRIPTS: the folder with the crontab's scripts; those the commands name are copied into
# images/astro/scripts/ (mounted read-write for that) and called by name.
import-crontab: bootstrap  ## turn a crontab into registry entries (CRONTAB=file, INTO=registry to merge into, SCRIPTS=dir of its scripts)
	@test -n "$(CRONTAB)" || { echo "usage: make import-crontab CRONTAB=FILE [INTO=dags/registry.yaml] [SCRIPTS=DIR]" >&2; exit 2; }
	@test -f "$(CRONTAB)" || { echo "import-crontab: $(CRONTAB): no such file" >&2; exit 2; }
	@test -z "$(SCRIPTS)" -o -d "$(SCRIPTS)" || { echo "import-crontab: SCRIPTS=$(SCRIPTS): no such folder" >&2; exit 2; }
	@tools/build-images.sh $(TAG) airflow >/dev/null
	@$(AIRFLOW_TOOL) -u "$$(id -u):$$(id -g)" -v "$(abspath $(CRONTAB)):$(abspath $(CRONTAB)):ro" \
	  $(if $(INTO),-v "$(abspath $(dir $(INTO))):$(abspath $(dir $(INTO)))") \
	  $(if $(SCRIPTS),-v "$(abspath $(SCRIPTS)):$(abspath $(SCRIPTS)):ro" -v "$(CURDIR)/images/astro/scripts:$(CURDIR)/images/astro/scripts") \
	  downlink/airflow:$(TAG) python -m downlink_airflow.cli import-crontab "$(abspath $(CRONTAB))" \
	  $(if $(INTO),--into "$(abspath $(INTO))") \
	  $(if $(SCRIPTS),--scripts "$(abspath $(SCRIPTS))" --scripts-into "$(CURDIR)/images/astro/scripts") $(ARGS)

# `make test`: lint, then the unit suites (one after the other) and the independent e2e stacks
# (each its own compose project and ports), all at once: the stacks spend their first minutes
# starting up and waiting, which the unit suites fill. tools/parallel.sh prints each job's output
# whole when it ends. Logs and summaries: build/logs/test/.
UNIT_SUITES := test-unit-config test-unit-contract test-unit-astro test-unit-airflow test-unit-docker-proxy
test: build browser $(VENV)/.done env $(FAKE_ENGINE)  ## run every test: lint, then unit (in the images) and the end-to-end stacks in parallel
	@$(MAKE) --no-print-directory lint
	@tools/parallel.sh build/logs/test unit "$(MAKE) --no-print-directory $(UNIT_SUITES)" \
	  $(foreach g,$(E2E_GROUPS),e2e-$(g) "$(MAKE) --no-print-directory test-e2e-$(g) BUILT=1") \
	  e2e-celery "$(MAKE) --no-print-directory test-e2e-celery BUILT=1" \
	  e2e-podman "$(MAKE) --no-print-directory test-podman BUILT=1"

lint: $(VENV)/.done  ## ruff over all of the repository's Python (ruff.toml), mypy over the packages (mypy.ini)
	$(VENV)/bin/ruff check --no-cache .
	$(VENV)/bin/mypy

test-unit: build  ## unit tests and the DAG-integrity test
	@$(MAKE) --no-print-directory $(UNIT_SUITES)

# docs/configuration.md against the two settings modules and the compose files (host, seconds).
test-unit-config: $(VENV)/.done
	$(VENV)/bin/python -m pytest $(PYTEST_FLAGS) tests/unit/config

# The data-volume contract (downlink_data) as both images see the same files.
test-unit-contract: $(VENV)/.done
	$(VENV)/bin/python -m pytest $(PYTEST_FLAGS) tests/unit/contract

# The proxy's policy and HTTP tests (against a fake engine in Go: Go's HTTP server and JSON
# decoder, as the engine has), then the same proxy image against the real engine.
FAKE_ENGINE := build/fake_engine
$(FAKE_ENGINE): tests/unit/docker_proxy/fake_engine/main.go
	@tools/bootstrap.sh go
	@mkdir -p build/go-cache
	cd $(dir $<) && GOCACHE=$(CURDIR)/build/go-cache GO111MODULE=off go build -o $(CURDIR)/$@ main.go

test-unit-docker-proxy: $(VENV)/.done $(FAKE_ENGINE)
	DOCKER_PROXY_IMAGE=downlink/docker-proxy:$(TAG) AIRFLOW_IMAGE=downlink/airflow:$(TAG) FAKE_ENGINE=$(CURDIR)/$(FAKE_ENGINE) \
	  $(VENV)/bin/python -m pytest $(PYTEST_FLAGS) tests/unit/docker_proxy

REAL_FITS ?= $(abspath $(CURDIR)/../shared/data/fits)
REAL_FITS_MORE ?= $(abspath $(CURDIR)/../shared/data/fits-more)

# In the astro image, with no network but the internal one of a throwaway database (tools/unit-db.sh)
# for the tests that store rows. The real files are required: without them the tests that read
# them fail (they are not skipped).
UNIT_DB = downlink-unit-db-$(TAG)
test-unit-astro:
	@dsn=$$(tools/unit-db.sh start $(TAG) $(UNIT_DB)) && trap 'tools/unit-db.sh stop $(UNIT_DB)' EXIT && \
	docker run --rm --network $(UNIT_DB) -e DOWNLINK_ARCHIVE_DSN="$$dsn" -v "$(CURDIR)/tests:/tests:ro" --tmpfs /small:size=1m,mode=1777 \
	  $(if $(wildcard $(REAL_FITS)),-v "$(REAL_FITS):/fits:ro") \
	  $(if $(wildcard $(REAL_FITS_MORE)),-v "$(REAL_FITS_MORE):/fits-more:ro") downlink/astro:$(TAG) \
	  python3 -m pytest $(PYTEST_FLAGS) /tests/unit/astro

test-unit-airflow:
	docker run --rm --network none -e AIRFLOW__CORE__LOAD_EXAMPLES=false \
	  -v "$(CURDIR)/tests:/tests:ro" -v "$(CURDIR)/dags:/opt/airflow/dags:ro" \
	  -v "$(CURDIR)/plugins:/opt/airflow/plugins:ro" downlink/airflow:$(TAG) \
	  python -m pytest $(PYTEST_FLAGS) /tests/unit/airflow /tests/dags

$(VENV)/.done: requirements.txt Makefile tools/pyproject.toml
	@mkdir -p build/logs
	@python3 -m venv $(VENV)
	@$(VENV)/bin/pip install -q --disable-pip-version-check -c requirements.txt pytest 'psycopg[binary]' requests pyyaml docker \
	  selenium==4.51.0 numpy==2.2.6 matplotlib==3.9.4 ruff==0.17.6 mypy==2.4.1 hypothesis==6.170.17 h11 >build/logs/venv.log 2>&1 || { tail -n 20 build/logs/venv.log; exit 1; }
	@# tools/ modules (dagrun, publish_arrival) for the benchmarks and e2e tests: editable, so edits apply at once
	@$(VENV)/bin/pip install -q --disable-pip-version-check -e tools >>build/logs/venv.log 2>&1 || { tail -n 20 build/logs/venv.log; exit 1; }
	@touch $@

.PHONY: browser
browser:  # chromium and chromedriver for the browser e2e test (apt, when missing)
	@tools/bootstrap.sh browser

# The e2e suite as independent stacks that run at once. The fault and backup modules kill and
# restore services, so they get a stack of their own; everything else shares the main stack.
E2E_GROUPS := main faults
E2E_FAULTS_MODULES := tests/e2e/test_faults.py tests/e2e/test_backup.py
E2E_PROJECT_main := downlink-test
E2E_PORTS_main := 18080 11080 15433
E2E_PROJECT_faults := downlink-test-faults
E2E_PORTS_faults := 18280 11280 15633
# BUILT=1: the caller (make test, make test-e2e) has built the images and written .env already, so
# the stacks started at once do not all rebuild and rewrite them.
E2E_PREREQS = $(if $(BUILT),,build env) $(VENV)/.done
e2e-env = DOWNLINK_E2E_PROJECT=$(E2E_PROJECT_$(1)) DOWNLINK_E2E_WEB_PORT=$(word 1,$(E2E_PORTS_$(1))) \
  DOWNLINK_E2E_MAIL_PORT=$(word 2,$(E2E_PORTS_$(1))) DOWNLINK_E2E_DB_PORT=$(word 3,$(E2E_PORTS_$(1)))

test-e2e: build browser $(VENV)/.done env  ## end-to-end tests: the e2e stacks (projects downlink-test, downlink-test-faults) at once
	@tools/parallel.sh build/logs/test $(foreach g,$(E2E_GROUPS),e2e-$(g) "$(MAKE) --no-print-directory test-e2e-$(g) BUILT=1")

test-e2e-main: $(E2E_PREREQS) browser
	$(call e2e-env,main) $(VENV)/bin/python -m pytest $(PYTEST_FLAGS) tests/e2e $(foreach m,$(E2E_FAULTS_MODULES),--ignore=$(m))

test-e2e-faults: $(E2E_PREREQS)
	$(call e2e-env,faults) $(VENV)/bin/python -m pytest $(PYTEST_FLAGS) $(E2E_FAULTS_MODULES)

# The compose projects the e2e targets use (.ci/run tears each one down).
e2e-projects:
	@echo $(foreach g,$(E2E_GROUPS),$(E2E_PROJECT_$(g))) downlink-test-celery

# The smoke test on Podman (tests/e2e_podman): its own engine (Podman's API on its own socket, its
# own storage and networks; DOCKER_HOST names it for every command of the target), the sample night
# and one failure mail. Images come from tools/podman-images.sh (copied from Docker when it has
# them, else built with Podman). Project and ports: PODMAN_E2E_* (make test runs it next to the others).
PODMAN_E2E_PROJECT ?= downlink-test-podman
PODMAN_E2E_PORTS ?= 18881 18882 18883
PODMAN_HOST = $(shell tools/bootstrap.sh podman-host)
podman-e2e-project:
	@echo $(PODMAN_E2E_PROJECT)
test-podman: $(if $(BUILT),,build env) $(VENV)/.done  ## the e2e smoke test on Podman (sample night, one failure mail)
	$(VENV)/bin/python -m pytest $(PYTEST_FLAGS) tests/unit/tools  # the bootstrap's engine choice, on a faked host
	@tools/bootstrap.sh podman
	@DOCKER_HOST=$(PODMAN_HOST) tools/podman-images.sh $(TAG)
	@# the docker-proxy and the real DockerOperator against Podman's API (create/attach/wait/logs ...)
	DOCKER_PROXY_TEST_SOCKET=$(patsubst unix://%,%,$(PODMAN_HOST)) DOCKER_PROXY_IMAGE=downlink/docker-proxy:$(TAG) \
	  $(VENV)/bin/python -m pytest $(PYTEST_FLAGS) tests/unit/docker_proxy/test_engine.py
	DOCKER_HOST=$(PODMAN_HOST) DOWNLINK_E2E_PROJECT=$(PODMAN_E2E_PROJECT) DOWNLINK_E2E_WEB_PORT=$(word 1,$(PODMAN_E2E_PORTS)) \
	  DOWNLINK_E2E_MAIL_PORT=$(word 2,$(PODMAN_E2E_PORTS)) DOWNLINK_E2E_DB_PORT=$(word 3,$(PODMAN_E2E_PORTS)) \
	  $(VENV)/bin/python -m pytest $(PYTEST_FLAGS) tests/e2e_podman

# Its own stack (project downlink-test-celery): CeleryExecutor with two workers; spread and failover.
test-e2e-celery: $(E2E_PREREQS)  ## two Celery workers: a night spread over both, one killed mid-run
	$(VENV)/bin/python -m pytest $(PYTEST_FLAGS) tests/e2e_celery

# make bench [ONLY=name1,name2]: the issue 7/8 benchmarks (tools/bench), then docs/benchmarks.md.
# Not part of `make test` or .ci/run: it takes minutes and measures the machine it runs on.
bench: build $(VENV)/.done  ## run the benchmarks (ONLY=ingest,calibration for a subset) and write docs/benchmarks.md
	$(VENV)/bin/python tools/bench/run.py $(if $(ONLY),--only $(ONLY)) $(BENCH_ARGS)

lock:  ## re-resolve requirements.txt (needs PyPI)
	@tools/lock.sh
