# A thin wrapper over meson and ninja, the way Neovim wraps its build.
#   make               build (installs what is missing first: scripts/bootstrap)
#   make test          every test (C unit, process-level, Python), but not:
#   make compat        npm packages through jshost vs Node (tests/compat; needs the npm registry)
#   make demo          the main job, cold
#   make bench         benchmarks (bench/RESULTS.md)
#   make fuzz          libFuzzer targets for FUZZ_SECONDS each (default 60)
#   make check-sanitize  the test suite under ASan + UBSan

BUILD        ?= build
PYTHON       ?= /usr/bin/python3
FUZZ_SECONDS ?= 60
MESON_FLAGS  ?=
MESON        ?= meson
TEST_FLAGS   ?= --print-errorlogs --verbose --num-processes 2
# The compat suite joins `make test` once every package in it matches Node.
TEST_EXCLUDE ?= --no-suite compat

SAN_BUILD  = build-sanitize
FUZZ_BUILD = build-fuzz

.PHONY: all deps test compat demo bench fuzz check-sanitize clean

all: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	@BOOTSTRAP_QUIET=1 scripts/bootstrap

$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD) -Dpython=$(PYTHON) $(MESON_FLAGS)

test: all
	$(MESON) test -C $(BUILD) $(TEST_FLAGS) $(TEST_EXCLUDE)

compat: all
	$(MESON) test -C $(BUILD) $(TEST_FLAGS) --suite compat

demo: all
	@scripts/demo $(BUILD)

bench: all
	@scripts/bench $(BUILD)

$(SAN_BUILD)/build.ninja:
	$(MESON) setup $(SAN_BUILD) -Dpython=$(PYTHON) -Db_sanitize=address,undefined \
		-Db_lundef=false -Dbuildtype=debug $(MESON_FLAGS)

check-sanitize: deps $(SAN_BUILD)/build.ninja
	ninja -C $(SAN_BUILD)
	JSHOST_SANITIZE=1 \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_odr_violation=0 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(MESON) test -C $(SAN_BUILD) $(TEST_FLAGS) $(TEST_EXCLUDE) --timeout-multiplier 4

$(FUZZ_BUILD)/build.ninja:
	CC=clang CXX=clang++ $(MESON) setup $(FUZZ_BUILD) -Dpython=$(PYTHON) -Dfuzz=true \
		-Dtests=false -Db_lundef=false -Dwerror=true $(MESON_FLAGS)

fuzz: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) fuzz
	@scripts/fuzz $(FUZZ_BUILD) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(FUZZ_BUILD)
