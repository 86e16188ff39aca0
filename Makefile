# Two entry points for users: `make synth` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat Pipfile.lock pyproject.toml | sha256sum | cut -c1-12)
PIPENV_VERSION := 2026.10.3

export CHECKPOINT_DISABLE := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_VERBOSITY := -1
# Python's byte-code caches (and pytest's rewritten test modules) in the gitignored __pycache__:
# a machine that turns them off recompiles everything each session, ~20 s of `make test-fast`.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install synth test test-fast lint bench cdktf-cli clean e2e deploy destroy terraform-version

install: $(STAMP)

# The stamp names the hash of the lock and pyproject.toml: a changed lock, or a package or console
# script added to pyproject (the editable install maps only the packages listed there), reinstalls;
# unchanged, it costs nothing.
# The project itself goes in editable, for its console scripts (`mnp`, `mnp-launch`); offline,
# with the setuptools pipenv installed (--no-build-isolation), and nothing else (--no-deps).
$(STAMP): Pipfile.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet pipenv==$(PIPENV_VERSION)
	$(BIN)/pipenv sync --dev
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $@

# Calls the environment's python directly: `cdktf synth` would add the CLI's own start-up.
synth: $(STAMP)
	$(BIN)/python main.py
	@echo "wrote cdktf.out/stacks/mnp-batch/cdk.tf.json"

# Everything. The Terraform round trip (over 10 min, mostly waiting on the provider's pollers) runs
# in a second pytest beside the rest, its output printed after; PYTEST_ARGS go to both.
test: $(STAMP)
	bash tests/run_all.sh $(BIN)/python $(PYTEST_ARGS)

# The apply round trip alone: real terraform and provider against an AWS emulator on loopback
# (tests/deploy), Terraform's output printed as it comes. Part of `make test` too.
e2e: $(STAMP)
	E2E_VARIANTS=$(E2E_VARIANTS) $(BIN)/python -m pytest tests/deploy -s -p no:cacheprovider $(PYTEST_ARGS)

# A real account: synth, then terraform in the synthesized directory, with terraform.tfvars
# when there is one. State as synth configured it (local beside the project, or STATE_BUCKET).
STACK_DIR := cdktf.out/stacks/mnp-batch
TFVARS := $(if $(wildcard terraform.tfvars),-var-file=../../../terraform.tfvars)
deploy: terraform-version synth
	terraform -chdir=$(STACK_DIR) init -input=false
	terraform -chdir=$(STACK_DIR) apply $(TFVARS)
	terraform -chdir=$(STACK_DIR) output

destroy: terraform-version
	@test -f $(STACK_DIR)/cdk.tf.json || { echo "error: no synthesized stack in $(STACK_DIR): run make synth with the settings you deployed with"; exit 2; }
	terraform -chdir=$(STACK_DIR) init -input=false
	terraform -chdir=$(STACK_DIR) destroy $(TFVARS)

# Older CLIs fail on the stack with parser errors (write-only arguments came in 1.11).
TERRAFORM_MIN := 1.11.0
terraform-version:
	@v=$$(terraform version 2>/dev/null | sed -n '1s/^Terraform v//p'); \
	if [ -z "$$v" ]; then echo "error: no terraform CLI on PATH: install Terraform >= $(TERRAFORM_MIN)"; exit 2; fi; \
	printf '%s\n%s\n' $(TERRAFORM_MIN) "$$v" | sort -V -C || { echo "error: Terraform $$v is too old: this stack needs Terraform >= $(TERRAFORM_MIN)"; exit 2; }

# The edit-test loop: everything but containers, network namespaces, MPI runs, the `slow`
# tools (terraform, checkov, pip installs, synth in a subprocess) and the Terraform round trip.
# One worker per core (pytest-xdist), each taking the next test when it is free.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist worksteal \
		-m "not containers and not netns and not mpi and not slow" \
		--ignore=tests/deploy/test_round_trip.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# Writes BENCHMARKS.md and docs/bench/*.png (a few minutes; it also times `make test`).
# QUICK=1: small sizes, no `make test`, into .bench-out/; BENCH_OUT=DIR writes there instead.
bench: $(STAMP)
	$(BIN)/python -m bench $(if $(filter 1 yes true,$(QUICK)),--quick) $(if $(BENCH_OUT),--out $(BENCH_OUT))

# Only for `npx cdktf synth|deploy|destroy`; make synth and make test do not need Node packages.
cdktf-cli:
	npm ci --no-audit --no-fund

clean:
	rm -rf cdktf.out .pytest_cache
