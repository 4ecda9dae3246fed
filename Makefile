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
	     libdb-dev libcurl4-openssl-dev libc-ares-dev
DEPS_TEST  = openssl curl python3 db-util faketime

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
SERVER_SRC	= $(filter-out server/main.c,$(wildcard server/*.c))
MGMT_SRC	= $(wildcard protocols/mgmt/*.c)
CLI_SRC		= $(wildcard cli/*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
LIB_COMMON	= $(BUILD)/libcommon.a
LIB_CONF	= $(BUILD)/libconf.a
LIB_STORE	= $(BUILD)/libstore.a
LIB_CA		= $(BUILD)/libca.a
LIB_LIFECYCLE	= $(BUILD)/liblifecycle.a
LIB_SERVER	= $(BUILD)/libserver.a
LIB_MGMT	= $(BUILD)/libmgmt.a

# Link order: highest layer first.
LIBS_ALL = $(LIB_MGMT) $(LIB_SERVER) $(LIB_LIFECYCLE) $(LIB_CA) $(LIB_STORE) $(LIB_CONF) $(LIB_COMMON)

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
$(LIB_SERVER): $(call obj,$(SERVER_SRC))
$(LIB_MGMT): $(call obj,$(MGMT_SRC))
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
	     $(BUILD)/tests/mgmt_test
$(BUILD)/tests/common_test: $(call obj,tests/unit/common_test.c) $(UNIT_HARNESS) $(LIB_COMMON)
$(BUILD)/tests/conf_test: $(call obj,tests/unit/conf_test.c) $(UNIT_HARNESS) $(LIB_CONF) $(LIB_COMMON)
$(BUILD)/tests/store_test: $(call obj,tests/unit/store_test.c) $(UNIT_HARNESS) $(LIB_STORE) $(LIB_COMMON)
$(BUILD)/tests/ca_test: $(call obj,tests/unit/ca_test.c) $(UNIT_HARNESS) $(LIB_CA) $(LIB_STORE) $(LIB_COMMON)
$(BUILD)/tests/lifecycle_test: $(call obj,tests/unit/lifecycle_test.c) $(UNIT_HARNESS) $(LIB_LIFECYCLE) $(LIB_CA) $(LIB_STORE) $(LIB_COMMON)
$(BUILD)/tests/server_test: $(call obj,tests/unit/server_test.c) $(UNIT_HARNESS) $(LIB_SERVER) $(LIB_CONF) $(LIB_COMMON)
$(BUILD)/tests/mgmt_test: $(call obj,tests/unit/mgmt_test.c) $(UNIT_HARNESS) $(LIBS_ALL)
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

test: deps
	@$(MAKE) --no-print-directory all $(UNIT_TESTS)
	@BIN=$(abspath $(BIN)) tests/run $(UNIT_TESTS)

# AddressSanitizer + UndefinedBehaviorSanitizer build of everything, then
# the whole test suite against it.
asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan BIN=build-asan/bin OPT="-O1 -g" \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  all $(subst $(BUILD)/,build-asan/,$(UNIT_TESTS))
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  BIN=$(abspath build-asan/bin) tests/run $(subst $(BUILD)/,build-asan/,$(UNIT_TESTS))

lint:
	cppcheck --quiet --error-exitcode=1 --std=c11 -I. common conf store ca lifecycle server protocols cli

clean:
	rm -rf $(BUILD) build-asan $(BIN)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
