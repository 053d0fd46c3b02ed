# PX storage: the two commands a new user needs are `make demo` and `make test`.
# Everything else is installed by the targets themselves (npm packages from the lockfile,
# solc wrappers, Rust crates from Cargo.lock).

SHELL := /bin/bash
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
CARGO ?= cargo
CARGO_FLAGS ?= --locked
FORGE_PROFILE ?= default

.PHONY: demo devnet test bootstrap build forge-build forge-test abi abi-check cargo-test \
        fmt fmt-check clippy lint slither snapshot ci clean

BINS := -p px-cli -p px-store -p px-node -p px-oracle --bins
# The demo binaries use the `demo` profile (Cargo.toml): no optimization and no debuginfo,
# which builds in about a quarter of the time of the dev profile on a cold machine.
DEMO_PROFILE ?= demo

## demo: install, build, start a local devnet and run the end-to-end story
demo: bootstrap forge-build
	$(CARGO) build $(CARGO_FLAGS) --profile $(DEMO_PROFILE) $(BINS)
	./target/$(DEMO_PROFILE)/px devnet --story

## devnet: the same stack, kept running for driving it with `px` by hand (Ctrl-C stops it)
devnet: bootstrap forge-build
	$(CARGO) build $(CARGO_FLAGS) --profile $(DEMO_PROFILE) $(BINS)
	./target/$(DEMO_PROFILE)/px devnet

## test: install, build and run every test (forge unit/fuzz/invariant/gas snapshots, cargo)
test: bootstrap forge-test mutation abi-check cargo-test

bootstrap:
	@bash .ci/bootstrap

forge-build: bootstrap
	forge build

forge-test: bootstrap
	FOUNDRY_PROFILE=$(FORGE_PROFILE) FORGE_SNAPSHOT_CHECK=true forge test

## abi: refresh the ABI JSON px-core compiles its bindings from (core/abi/)
abi: forge-build
	node .ci/abi.cjs

## mutation: the contract tests must kill every mutant of StorageNFT's checks (.ci/mutants.py)
.PHONY: mutation
mutation: bootstrap
	@bash .ci/mutate.sh

abi-check: forge-build
	node .ci/abi.cjs --check

cargo-test:
	$(CARGO) test $(CARGO_FLAGS) --workspace --all-targets
	$(CARGO) test $(CARGO_FLAGS) --workspace --doc

build: forge-build
	$(CARGO) build $(CARGO_FLAGS) --workspace

## snapshot: rewrite the committed gas snapshots (snapshots/)
snapshot: bootstrap
	forge test

fmt:
	forge fmt
	$(CARGO) fmt --all

fmt-check: bootstrap
	forge fmt --check
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy $(CARGO_FLAGS) --workspace --all-targets -- -D warnings

lint: fmt-check clippy

## slither: static analysis of the contracts (High/Medium findings fail)
slither: forge-build
	@bash .ci/slither

## ci: what CI runs
ci: lint test

clean:
	forge clean
	$(CARGO) clean
