# pkid — plain make + pkg-config. `make` builds bin/pkid and bin/pkictl.
# Targets: all deps run test unit integration asan bench lint clean

CC	?= cc
PKGS	 = libevent libevent_openssl libevent_pthreads jansson libjwt libcurl libcares openssl
WARN	 = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	   -Wpointer-arith -Wformat=2 -Wno-format-nonliteral
OPT	?= -O2 -g
SAN	?=
BUILD	?= build
BIN	?= bin
CONFIG	?= conf/pkid.json

# Debian packages the build and the tests need; `make deps` installs the
# missing ones (as root) and is quick when everything is present.
DEPS_BUILD = gcc make pkg-config libssl-dev libevent-dev libjansson-dev libjwt-dev \
	     libdb-dev libcurl4-openssl-dev libc-ares-dev clang libclang-rt-dev
DEPS_TEST  = openssl curl python3 db-util faketime \
	     certbot lego uacme dehydrated acme-tiny pebble python3-cryptography util-linux \
	     strongswan-pki libstrongswan-standard-plugins libstrongswan-extra-plugins

CFLAGS	+= -std=gnu11 $(OPT) $(SAN) $(WARN) -I. -D_GNU_SOURCE
LDFLAGS	+= $(SAN)

# pkg-config is evaluated lazily so `make deps` can run before it exists.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -ldb -lpthread -lm

# Modules, lowest layer first. Each module is its directory.
COMMON_SRC	= $(wildcard common/*.c)
CONF_SRC	= $(wildcard conf/*.c)
STORE_SRC	= $(wildcard store/*.c)
CA_SRC		= $(wildcard ca/*.c)
LIFECYCLE_SRC	= $(wildcard lifecycle/*.c)
CONNECTORS_SRC	= $(wildcard connectors/*.c)
SERVER_SRC	= $(filter-out server/main.c,$(wildcard server/*.c))
MGMT_SRC	= $(wildcard protocols/mgmt/*.c)
ACME_SRC	= $(wildcard protocols/acme/*.c)
EST_SRC		= $(wildcard protocols/est/*.c)
CLI_SRC		= $(wildcard cli/*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
LIB_COMMON	= $(BUILD)/libcommon.a
LIB_CONF	= $(BUILD)/libconf.a
LIB_STORE	= $(BUILD)/libstore.a
LIB_CA		= $(BUILD)/libca.a
LIB_LIFECYCLE	= $(BUILD)/liblifecycle.a
LIB_CONNECTORS	= $(BUILD)/libconnectors.a
LIB_SERVER	= $(BUILD)/libserver.a
LIB_MGMT	= $(BUILD)/libmgmt.a
LIB_ACME	= $(BUILD)/libacme.a
LIB_EST		= $(BUILD)/libest.a

# Link order: highest layer first.
LIBS_ALL = $(LIB_MGMT) $(LIB_ACME) $(LIB_EST) $(LIB_SERVER) $(LIB_LIFECYCLE) $(LIB_CONNECTORS) $(LIB_CA) $(LIB_STORE) $(LIB_CONF) $(LIB_COMMON)

.PHONY: all deps run test unit integration asan bench lint clean
all: $(BIN)/pkid $(BIN)/pkictl

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(LIB_COMMON): $(call obj,$(COMMON_SRC))
$(LIB_CONF): $(call obj,$(CONF_SRC))
$(LIB_STORE): $(call obj,$(STORE_SRC))
$(LIB_CA): $(call obj,$(CA_SRC))
$(LIB_LIFECYCLE): $(call obj,$(LIFECYCLE_SRC))
$(LIB_CONNECTORS): $(call obj,$(CONNECTORS_SRC))
$(LIB_SERVER): $(call obj,$(SERVER_SRC))
$(LIB_MGMT): $(call obj,$(MGMT_SRC))
$(LIB_ACME): $(call obj,$(ACME_SRC))
$(LIB_EST): $(call obj,$(EST_SRC))
$(BUILD)/lib%.a:
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN)/pkid: $(call obj,server/main.c) $(LIBS_ALL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BIN)/pkictl: $(call obj,$(CLI_SRC)) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# ---- unit tests: one binary per module, linking that module and below ----
UNIT_HARNESS = $(call obj,tests/unit/test.c)
UNIT_TESTS = $(BUILD)/tests/common_test $(BUILD)/tests/conf_test \
	     $(BUILD)/tests/store_test $(BUILD)/tests/ca_test \
	     $(BUILD)/tests/lifecycle_test $(BUILD)/tests/server_test \
	     $(BUILD)/tests/mgmt_test $(BUILD)/tests/acme_validate_test \
	     $(BUILD)/tests/acme_test $(BUILD)/tests/est_test \
	     $(BUILD)/tests/lifecycle_query_test $(BUILD)/tests/notify_test \
	     $(BUILD)/tests/lifecycle_ca_test $(BUILD)/tests/connectors_test
$(BUILD)/tests/common_test: $(call obj,tests/unit/common_test.c) $(UNIT_HARNESS) $(LIB_COMMON)
$(BUILD)/tests/conf_test: $(call obj,tests/unit/conf_test.c) $(UNIT_HARNESS) $(LIB_CONF) $(LIB_COMMON)
$(BUILD)/tests/store_test: $(call obj,tests/unit/store_test.c) $(UNIT_HARNESS) $(LIB_STORE) $(LIB_COMMON)
$(BUILD)/tests/ca_test: $(call obj,tests/unit/ca_test.c) $(UNIT_HARNESS) $(LIB_CA) $(LIB_STORE) $(LIB_COMMON)
$(BUILD)/tests/lifecycle_test: $(call obj,tests/unit/lifecycle_test.c) $(UNIT_HARNESS) $(LIB_LIFECYCLE) $(LIB_CONNECTORS) $(LIB_CA) $(LIB_STORE) $(LIB_COMMON)
$(BUILD)/tests/lifecycle_query_test: $(call obj,tests/unit/lifecycle_query_test.c) $(UNIT_HARNESS) $(LIB_LIFECYCLE) $(LIB_CONNECTORS) $(LIB_CA) $(LIB_STORE) $(LIB_COMMON)
$(BUILD)/tests/lifecycle_ca_test: $(call obj,tests/unit/lifecycle_ca_test.c) $(UNIT_HARNESS) $(LIB_LIFECYCLE) $(LIB_CONNECTORS) $(LIB_CA) $(LIB_STORE) $(LIB_CONF) $(LIB_COMMON)
$(BUILD)/tests/notify_test: $(call obj,tests/unit/notify_test.c) $(UNIT_HARNESS) $(LIB_LIFECYCLE) $(LIB_CONNECTORS) $(LIB_CA) $(LIB_STORE) $(LIB_CONF) $(LIB_COMMON)
$(BUILD)/tests/connectors_test: $(call obj,tests/unit/connectors_test.c) $(UNIT_HARNESS) $(LIB_LIFECYCLE) $(LIB_CONNECTORS) $(LIB_CA) $(LIB_STORE) $(LIB_CONF) $(LIB_COMMON)
$(BUILD)/tests/server_test: $(call obj,tests/unit/server_test.c) $(UNIT_HARNESS) $(LIB_SERVER) $(LIB_CONF) $(LIB_COMMON)
$(BUILD)/tests/mgmt_test: $(call obj,tests/unit/mgmt_test.c) $(UNIT_HARNESS) $(LIBS_ALL)
$(BUILD)/tests/acme_validate_test: $(call obj,tests/unit/acme_validate_test.c) $(UNIT_HARNESS) $(LIB_ACME) $(LIB_SERVER) $(LIB_LIFECYCLE) $(LIB_CONNECTORS) $(LIB_CA) $(LIB_STORE) $(LIB_CONF) $(LIB_COMMON)
$(BUILD)/tests/acme_test: $(call obj,tests/unit/acme_test.c) $(UNIT_HARNESS) $(LIB_ACME) $(LIB_SERVER) $(LIB_LIFECYCLE) $(LIB_CONNECTORS) $(LIB_CA) $(LIB_STORE) $(LIB_CONF) $(LIB_COMMON)
$(BUILD)/tests/est_test: $(call obj,tests/unit/est_test.c) $(UNIT_HARNESS) $(LIB_EST) $(LIB_SERVER) $(LIB_LIFECYCLE) $(LIB_CONNECTORS) $(LIB_CA) $(LIB_STORE) $(LIB_CONF) $(LIB_COMMON)
$(UNIT_TESTS): $(BUILD)/tests/%:
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

deps:
	@missing=""; for p in $(DEPS_BUILD) $(DEPS_TEST); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "deps: run as root to install:$$missing" >&2; exit 1; fi; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >/tmp/pkid-deps.log 2>&1 \
	    || { tail -20 /tmp/pkid-deps.log >&2; exit 1; }; \
	fi

run: deps
	@$(MAKE) --no-print-directory all
	$(BIN)/pkid serve --config $(CONFIG)

unit: $(UNIT_TESTS)
	@BIN=$(abspath $(BIN)) TESTS_NO_INTEGRATION=1 tests/run $(UNIT_TESTS)

integration: all
	@BIN=$(abspath $(BIN)) tests/integration/run

# Clients of the project's own that integration tests drive (tests/tools/);
# the suites find them through TOOLS.
TEST_TOOLS = $(BUILD)/tools/est_tlsunique
$(BUILD)/tools/est_tlsunique: $(call obj,tests/tools/est_tlsunique.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs openssl 2>/dev/null)

# ---- benchmarks (bench/README.md) ----
# `make bench` builds pkid and the load generators and runs bench/run:
# every benchmark bounded in time, results in bench/results/*.json, the
# table in bench/README.md regenerated.
# BENCH_ONLY="issue store" runs some; BENCH_STORE_ROWS sizes bench/store.
# The tools go to $(BUILD)/bench/bin/ ($(BUILD)/bench/<tool>/ holds their
# objects).
BENCH_DIR	 = $(BUILD)/bench/bin
BENCH_TOOLS	+= $(BENCH_DIR)/estload $(BENCH_DIR)/issue $(BENCH_DIR)/store
BENCH_ONLY	?=
$(BENCH_DIR)/estload: $(call obj,$(wildcard bench/estload/*.c)) $(LIB_COMMON)
$(BENCH_DIR)/issue: $(call obj,$(wildcard bench/issue/*.c)) \
	    $(LIB_LIFECYCLE) $(LIB_CONNECTORS) $(LIB_CA) $(LIB_STORE) $(LIB_COMMON)
$(BENCH_DIR)/store: $(call obj,$(wildcard bench/store/*.c)) \
	    $(LIB_LIFECYCLE) $(LIB_CONNECTORS) $(LIB_CA) $(LIB_STORE) $(LIB_COMMON)
$(BENCH_DIR)/estload $(BENCH_DIR)/issue $(BENCH_DIR)/store:
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
# bench/acmeload: full ACME flows against any RFC 8555 server (libcurl
# multi + libevent + OpenSSL); bench/acme.py runs it against Pebble and pkid.
BENCH_TOOLS	+= $(BENCH_DIR)/acmeload
$(BENCH_DIR)/acmeload: $(call obj,$(wildcard bench/acmeload/*.c)) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_TOOLS)
	@BIN=$(abspath $(BIN)) BENCH=$(abspath $(BENCH_DIR)) bench/run $(BENCH_ONLY)

# The fuzz seeds are replayed first so that the last line `make test`
# prints is the suite's "N passed, N failed".
test: deps
	@$(MAKE) --no-print-directory all $(UNIT_TESTS) $(TEST_TOOLS)
	@$(MAKE) --no-print-directory fuzz-smoke
	@BIN=$(abspath $(BIN)) TOOLS=$(abspath $(BUILD)/tools) tests/run $(UNIT_TESTS)

# AddressSanitizer + UndefinedBehaviorSanitizer build of everything, then
# the whole test suite against it.
asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan BIN=build-asan/bin OPT="-O1 -g" \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  all $(subst $(BUILD)/,build-asan/,$(UNIT_TESTS) $(TEST_TOOLS))
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  BIN=$(abspath build-asan/bin) TOOLS=$(abspath build-asan/tools) \
	  tests/run $(subst $(BUILD)/,build-asan/,$(UNIT_TESTS))

# ---- fuzzing: one libFuzzer driver per parser (tests/fuzz/README.md) ----
# The modules are rebuilt with clang and the sanitizers into $(BUILD)-fuzz/
# (build-fuzz/) by a recursive make. `make fuzz` runs each driver for
# FUZZ_SECONDS on its seeds (new inputs go to build-fuzz/corpus/, crashes
# to build-fuzz/crashes/); `make fuzz-smoke` replays the seeds once.
# FUZZ_DRIVERS="csr pem" picks drivers.
FUZZ_SECONDS	?= 60
FUZZ_DRIVERS	?= conf b64 pem csr subject json jws est basic
FUZZ_DIR	?= $(BUILD)-fuzz
FUZZ_SAN	 = -fsanitize=fuzzer-no-link,address,undefined \
		   -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZ_MAKE	 = $(MAKE) --no-print-directory BUILD=$(FUZZ_DIR) \
		   BIN=$(FUZZ_DIR)/bin CC=clang OPT="-O1 -g" SAN="$(FUZZ_SAN)"
FUZZ_ENV	 = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
FUZZ_BINS	 = $(patsubst %,$(BUILD)/fuzz/%_fuzz,$(FUZZ_DRIVERS))
FUZZ_LIBS	 = $(LIB_LIFECYCLE) $(LIB_CONNECTORS) $(LIB_CA) $(LIB_STORE) $(LIB_CONF) $(LIB_COMMON)

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-bins fuzz-clean
# Archives in a group: a driver may add higher layers as prerequisites.
$(FUZZ_BINS): $(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o \
	    $(BUILD)/tests/fuzz/fuzz.o $(FUZZ_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $(filter %.o,$^) \
	  -Wl,--start-group $(filter %.a,$^) -Wl,--end-group $(PKG_LIBS)
$(BUILD)/fuzz/jws_fuzz: $(LIB_ACME) $(LIB_SERVER)
$(BUILD)/fuzz/est_fuzz: $(LIB_EST) $(LIB_SERVER)
$(BUILD)/fuzz/basic_fuzz: $(LIB_EST) $(LIB_SERVER)

fuzz-build:
	@$(FUZZ_MAKE) fuzz-bins
fuzz-bins: $(FUZZ_BINS)
	@:

fuzz: fuzz-build
	@failed=; for d in $(FUZZ_DRIVERS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$d $(FUZZ_DIR)/crashes; \
	  dict=; [ -f tests/fuzz/$$d.dict ] && dict=-dict=tests/fuzz/$$d.dict; \
	  echo "fuzz: $$d for $(FUZZ_SECONDS) s (log: $(FUZZ_DIR)/$$d.log)"; \
	  if $(FUZZ_ENV) $(FUZZ_DIR)/fuzz/$${d}_fuzz $$dict \
	    -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_DIR)/crashes/$$d- \
	    $(FUZZ_DIR)/corpus/$$d tests/fuzz/corpus/$$d >$(FUZZ_DIR)/$$d.log 2>&1; \
	  then grep -E '^#[0-9]+[[:space:]]+DONE' $(FUZZ_DIR)/$$d.log | tail -1; \
	  else grep -E 'property|ERROR|SUMMARY|Test unit written' $(FUZZ_DIR)/$$d.log; \
	    failed="$$failed $$d"; fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: FAILED:$$failed" >&2; exit 1; fi

fuzz-smoke: fuzz-build
	@for d in $(FUZZ_DRIVERS); do \
	  $(FUZZ_ENV) $(FUZZ_DIR)/fuzz/$${d}_fuzz -runs=0 tests/fuzz/corpus/$$d \
	    >$(FUZZ_DIR)/$$d-smoke.log 2>&1 \
	    || { tail -40 $(FUZZ_DIR)/$$d-smoke.log; echo "fuzz-smoke: $$d FAILED" >&2; exit 1; }; \
	done; echo "fuzz-smoke: seeds of $(FUZZ_DRIVERS) replayed"

fuzz-clean:
	rm -rf $(FUZZ_DIR)
clean: fuzz-clean

lint:
	cppcheck --quiet --error-exitcode=1 --std=c11 -I. common conf store ca lifecycle connectors server protocols cli

clean:
	rm -rf $(BUILD) build-asan $(BIN)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
