# PX storage: the two commands a new user needs are `make demo` and `make test`.
# Everything else is installed by the targets themselves (npm packages from the lockfile,
# solc wrappers, Rust crates from Cargo.lock).

SHELL := /bin/bash
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
CARGO ?= cargo
CARGO_FLAGS ?= --locked
FORGE_PROFILE ?= default

.PHONY: demo demo-network devnet test bootstrap build forge-build forge-test abi abi-check cargo-test \
        fmt fmt-check clippy lint slither snapshot ci clean
.PHONY: ipfs-daemons kubo jsipfs test-kubo test-jsipfs
.PHONY: web web-lint test-web

BINS := -p px-cli -p px-store -p px-node -p px-oracle --bins
# The demo binaries use the `demo` profile (Cargo.toml): no optimization and no debuginfo,
# which builds in about a quarter of the time of the dev profile on a cold machine.
DEMO_PROFILE ?= demo

## demo: install, build, start a local devnet and run the end-to-end story
demo: bootstrap forge-build
	$(CARGO) build $(CARGO_FLAGS) --profile $(DEMO_PROFILE) $(BINS)
	./target/$(DEMO_PROFILE)/px devnet --story

## demo-network: the provider network's story (`px devnet --story network`: 6 provider nodes
## beside the home node; upload at 4/6, providers stopped, proofs, slashing, repair, earnings).
## It moves 64 MiB, so it runs the optimized dev binaries (those `make test` builds).
demo-network: bootstrap forge-build
	$(CARGO) build $(CARGO_FLAGS) $(BINS)
	./target/debug/px devnet --story network

## devnet: the same stack, kept running for driving it with `px` or the web dApp by hand (it
## prints the dApp's URL; Ctrl-C stops it)
devnet: bootstrap forge-build web
	$(CARGO) build $(CARGO_FLAGS) --profile $(DEMO_PROFILE) $(BINS)
	./target/$(DEMO_PROFILE)/px devnet

## test: install, build and run every test (forge unit/fuzz/invariant/gas snapshots, cargo)
test: bootstrap forge-test mutation abi-check cargo-test
# ... and the node, oracle and story tests again on a real Kubo and on js-ipfs (cargo-test ran
# them on the embedded px-store; its Kubo conformance test needs the Kubo binary).
test: test-kubo test-jsipfs
# ... and the web dApp: its format code against px-core's vectors, then end to end in Chromium.
test: test-web
cargo-test: kubo

## ipfs-daemons: Kubo 0.43.1 from its pinned Go module into .cache/bin (minutes, once) and
## js-ipfs 0.66 from tools/jsipfs's lockfile into tools/jsipfs/node_modules; both skipped when
## already there (tools/README.md)
ipfs-daemons: kubo jsipfs

kubo:
	@bash tools/kubo/build.sh >/dev/null

jsipfs:
	@bash tools/jsipfs/install.sh >/dev/null

# One IPFS backend for the node's and the oracle's integration tests and the devnet story; the
# tests start and stop the daemons themselves on loopback (.ci/ipfs-tests.sh says which modules
# run on px-store only, and why it runs the binaries cargo-test built).
IPFS_TESTS = CARGO="$(CARGO)" CARGO_FLAGS="$(CARGO_FLAGS)" bash .ci/ipfs-tests.sh $(1)

## test-kubo / test-jsipfs: those tests on Kubo / on js-ipfs (js-ipfs skips, by name, what it
## cannot do: see the backend table in README.md)
test-kubo: kubo
	$(call IPFS_TESTS,kubo)

test-jsipfs: jsipfs
	$(call IPFS_TESTS,jsipfs)

bootstrap:
	@bash .ci/bootstrap

forge-build: bootstrap
	forge build

forge-test: bootstrap
	FOUNDRY_PROFILE=$(FORGE_PROFILE) FORGE_SNAPSHOT_CHECK=true forge test

## abi: refresh the ABI JSON px-core compiles its bindings from (core/abi/)
abi: forge-build
	node .ci/abi.cjs

## mutation: the contract tests must kill every mutant of the access checks and comparisons of
## StorageNFT, the storage market and the provider registry (.ci/mutants.py)
.PHONY: mutation
# With PX_MUTATION_RESULT set (.ci/run sets it), the check is already running in the background
# (PX_MUTATION_PID) and writes its exit code to that file and its output beside it (.log): this
# target waits for that verdict instead of running the check a second time.
mutation: bootstrap
	@if [ -z "$$PX_MUTATION_RESULT" ]; then exec bash .ci/mutate.sh; fi; \
	echo "mutation: waiting for the check .ci/run started in the background"; \
	while [ ! -f "$$PX_MUTATION_RESULT" ]; do \
	  if ! kill -0 "$$PX_MUTATION_PID" 2>/dev/null && [ ! -f "$$PX_MUTATION_RESULT" ]; then \
	    echo "mutation: the background check ended without a verdict"; exit 1; fi; \
	  sleep 5; \
	done; \
	log="$${PX_MUTATION_RESULT%.rc}.log"; \
	if [ "$$(cat "$$PX_MUTATION_RESULT")" = 0 ]; then tail -n 2 "$$log"; else cat "$$log"; exit 1; fi

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

# A toolchain without rustfmt or clippy (rustup cannot fetch components on every machine) skips
# that check and says so; the tests still run.
fmt-check: bootstrap
	forge fmt --check
	@if $(CARGO) fmt --version >/dev/null 2>&1; then $(CARGO) fmt --all -- --check; \
	else echo "lint: rustfmt is not installed in this toolchain: cargo fmt --check SKIPPED"; fi

clippy:
	@if $(CARGO) clippy --version >/dev/null 2>&1; then \
	  $(CARGO) clippy $(CARGO_FLAGS) --workspace --all-targets -- -D warnings; \
	else echo "lint: clippy is not installed in this toolchain: cargo clippy SKIPPED"; fi

## web: build the web dApp (web/dist, which `px devnet` has px-node serve)
web: bootstrap
	cd web && npm run build

## web-lint: strict TypeScript over the dApp and its tests; its ABIs match core/abi
web-lint: bootstrap
	cd web && npm run lint

## test-web: the dApp's unit tests (Vitest) and its end-to-end test in headless Chromium against
## a devnet it starts with the workspace's `px` (built as cargo-test builds it: same features)
test-web: web
	cd web && npm test
	$(CARGO) test $(CARGO_FLAGS) --workspace --all-targets --no-run
	cd web && npm run e2e

lint: fmt-check clippy web-lint

## slither: static analysis of the contracts (High/Medium findings fail)
slither: forge-build
	@bash .ci/slither

## ci: what CI runs
ci: lint test

clean:
	forge clean
	$(CARGO) clean
