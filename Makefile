# A thin wrapper over meson and ninja, the way Neovim wraps its build.
#   make               build (installs what is missing first: scripts/bootstrap)
#   make test          every test (C unit, process-level, Python, npm packages vs Node)
#   make compat        only the npm packages through jshost vs Node (tests/compat)
#   make demo          the main job, cold
#   make bench         benchmarks (bench/RESULTS.md); make test runs them tiny,
#                      for figures, never speeds (scripts/bench --check)
#   make fuzz          libFuzzer targets for FUZZ_SECONDS each (default 60)
#   make check-sanitize  the test suite under ASan + UBSan
#   make install       install into PREFIX (default /usr/local; DESTDIR honoured)
#   make uninstall     remove what make install put there

BUILD        ?= build
PYTHON       ?= /usr/bin/python3
FUZZ_SECONDS ?= 60
MESON_FLAGS  ?=
MESON        ?= meson
PREFIX       ?= /usr/local
DESTDIR      ?=
TEST_FLAGS   ?= --print-errorlogs --verbose --num-processes 2
TEST_EXCLUDE ?=

SAN_BUILD  = build-sanitize
FUZZ_BUILD = build-fuzz

.PHONY: all deps test compat demo bench fuzz check-sanitize clean install \
	uninstall

all: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	@BOOTSTRAP_QUIET=1 scripts/bootstrap

# libdir=lib: lib/libjshost.so, as docs/install.md says, not Debian's multiarch
# lib/x86_64-linux-gnu.
$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD) -Dpython=$(PYTHON) --prefix=$(abspath $(PREFIX)) \
		--libdir=lib $(MESON_FLAGS)

# meson install underneath (scripts/install keeps what it installed for
# uninstall). The prefix is compiled in only as the daemons' last resort:
# the installed jshost, libjshost and Python package find them relative to
# themselves, so a moved prefix still works.
install: deps $(BUILD)/build.ninja
	$(MESON) configure $(BUILD) --prefix=$(abspath $(PREFIX)) --libdir=lib
	ninja -C $(BUILD)
	$(PYTHON) scripts/install $(BUILD) install $(DESTDIR)

uninstall:
	$(PYTHON) scripts/install $(BUILD) uninstall $(DESTDIR)

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
