# secretfs - plain Makefile; dependencies through pkg-config.
#
#   make                         build ./build/secretfs
#   make check                   unit tests (cmocka), fuzz corpus replay and integration tests
#                                (pytest, needs /dev/fuse)
#   make SANITIZER=address,undefined check
#   make install PREFIX=/usr DESTDIR=...   binary, systemd units, man pages, examples
#   make deps / make test-deps   install the Debian packages that are missing
#   make demo                    build and mount examples/store.json at $(DEMO_MNT)
#   make bench                   run the benchmark in bench/
#   make soak [SOAK_SECONDS=60] [SOAK_BACKENDS="vault aws"] [SOAK_STRICT=0]
#                                readers, rotation and faults through a real mount (tests/soak/);
#                                not part of make check
#   make valgrind                one integration scenario under valgrind (tests/valgrind/)
#   make secret-scan             git-secrets over this tree (tests/secret-scan, .gitallowed)
#   make format
#   make fuzz                    libFuzzer targets (clang) in build-fuzz/; run e.g.
#                                build-fuzz/fuzz_policy -dict=tests/fuzz/policy.dict \
#                                    tests/fuzz/corpus/policy
#   make fuzz-run FUZZ_TIME=10   every target for FUZZ_TIME seconds (CI)

VERSION := 0.1.0
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/secretfs
DESTDIR ?=

CC ?= cc
PKG_CONFIG ?= pkg-config
PYTHON ?= /usr/bin/python3
SANITIZER ?=

comma := ,
BUILD ?= build$(if $(SANITIZER),-$(subst $(comma),-,$(SANITIZER)))

PKGS := fuse3 jansson inih openssl libcurl libsystemd
TEST_PKGS := cmocka

# Units go where systemd looks: its own directory for PREFIX=/usr (pkg-config
# systemd), PREFIX/lib/systemd/system otherwise (/usr/local/lib/systemd/system
# is on systemd's search path too).  Their ExecStart= is rewritten to BINDIR.
SYSTEMDUNITDIR ?= $(if $(filter /usr,$(PREFIX)),$(or $(shell $(PKG_CONFIG) \
	--variable=systemdsystemunitdir systemd 2>/dev/null),/lib/systemd/system),$(PREFIX)/lib/systemd/system)
UNITS := secretfs.service secretfs@.service
MAN5 := docs/secretfs.conf.5
MAN8 := docs/secretfs.8

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
	-Wmissing-declarations -Wno-unused-parameter -Werror
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE $(WARN) $(HARDEN) $(CFLAGS) -Iinclude -Isrc \
	-DSECRETFS_VERSION='"$(VERSION)"' -DFUSE_USE_VERSION=314 \
	$(shell $(PKG_CONFIG) --cflags $(PKGS))
ALL_LDFLAGS := -pie -Wl,-z,relro,-z,now $(LDFLAGS)
LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS)) -lpthread

ifneq ($(SANITIZER),)
ALL_CFLAGS += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
ALL_LDFLAGS += -fsanitize=$(SANITIZER)
endif

LIB_SRC := $(filter-out src/main.c,$(wildcard src/*.c src/fs/*.c src/backends/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/src/main.o
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
DEPS := $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d)

# Debian packages: to build, to run, and to test.
DEB_BUILD := gcc make pkg-config libfuse3-dev libjansson-dev libinih-dev libssl-dev libcurl4-openssl-dev \
	libsystemd-dev
DEB_RUN := fuse3 libsystemd0
DEB_VALGRIND := valgrind
DEB_SECRET_SCAN := git git-secrets
# Node.js (with npm) runs the vendors' JavaScript clients in tests/node/.
DEB_NODE := nodejs
DEB_TEST := libcmocka-dev python3 python3-pytest python3-hvac python3-botocore python3-boto3 openssl util-linux procps passwd \
	systemd man-db groff-base \
	python3-yaml python3-kubernetes python3-google-auth python3-cryptography python3-requests docker-compose binutils nginx curl openssh-client \
	$(DEB_VALGRIND) $(DEB_SECRET_SCAN) $(DEB_NODE)

.PHONY: all check check-unit check-fuzz-replay check-servers check-integration install uninstall clean format \
	deps test-deps node-deps demo demo-stop bench test fuzz fuzz-run fuzz-deps soak valgrind secret-scan

all: $(BUILD)/secretfs

$(BUILD)/secretfs: $(MAIN_OBJ) $(BUILD)/libsecretfs.a
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/libsecretfs.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/test_%: tests/unit/test_%.c $(BUILD)/libsecretfs.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(shell $(PKG_CONFIG) --cflags $(TEST_PKGS)) -Itests/unit \
		$(ALL_LDFLAGS) -o $@ $< $(BUILD)/libsecretfs.a $(LIBS) \
		$(shell $(PKG_CONFIG) --libs $(TEST_PKGS))

# The signer as a JSON-lines filter, for the differential test against botocore
# (tests/integration/test_sigv4_botocore.py finds it through SECRETFS_BUILD).
$(BUILD)/tests/sigv4_tool: tests/unit/sigv4_tool.c $(BUILD)/libsecretfs.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libsecretfs.a $(LIBS)

-include $(DEPS)

check: check-unit check-fuzz-replay check-servers check-integration

check-unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; \
		SECRETFS_FIXTURES=$(abspath tests/data/fixtures) SECRETFS_TESTDATA=$(abspath tests/data) $$t; done

# Each tests/fuzz/fuzz_NAME.c is a libFuzzer target with its corpus in tests/fuzz/corpus/NAME/.
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
REPLAY_BIN := $(FUZZ_NAMES:%=$(BUILD)/tests/replay_%)

# The corpus and past crashers through the same entry point, built with $(CC).
$(BUILD)/tests/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c tests/fuzz/fuzz.h \
		$(BUILD)/libsecretfs.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/fuzz $(ALL_LDFLAGS) -o $@ tests/fuzz/replay.c $< \
		$(BUILD)/libsecretfs.a $(LIBS)

check-fuzz-replay: $(REPLAY_BIN)
	@set -e; for n in $(FUZZ_NAMES); do echo "== replay $$n"; \
		$(BUILD)/tests/replay_$$n tests/fuzz/corpus/$$n; done

# libFuzzer builds: clang, each target linked with the sources it needs, listed below.
# `make fuzz-run` runs each for FUZZ_TIME seconds (CI), failing on a crash, leak or UB.
FUZZ_CC ?= clang
FUZZ_BUILD := build-fuzz
FUZZ_TIME ?= 20
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE $(WARN) -O1 -g -fno-omit-frame-pointer -Iinclude -Isrc \
	-Itests/fuzz -fno-sanitize-recover=all -DSECRETFS_VERSION='"$(VERSION)"' \
	-DFUSE_USE_VERSION=314 $(shell $(PKG_CONFIG) --cflags $(PKGS))
FUZZ_LIBS := $(LIBS)
FUZZ_OBJ = $(addprefix $(FUZZ_BUILD)/,$(1))
# Debian packages: clang and the compiler-rt runtime that holds libFuzzer.
DEB_FUZZ := clang libclang-rt-14-dev

FUZZ_BIN := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)

# The packages first (a no-op when they are there), then the targets.
fuzz: fuzz-deps
	@$(MAKE) --no-print-directory $(FUZZ_BIN)

fuzz-deps:
	@tests/install-deps $(DEB_BUILD) $(DEB_FUZZ)

$(FUZZ_BUILD)/fuzz_policy: $(call FUZZ_OBJ,src/policy.o src/selector.o src/util.o)
$(FUZZ_BUILD)/fuzz_file_store: $(call FUZZ_OBJ,src/backends/file.o src/config.o src/namespace.o \
	src/secret.o src/util.o)
$(FUZZ_BUILD)/fuzz_namespace: $(call FUZZ_OBJ,src/namespace.o src/secret.o src/util.o)
# The backends' parsers share the kit's (kit_parse.o, which maps statuses through http.o).
FUZZ_KIT := src/backends/kit_parse.o src/http.o src/backends/errors.o
$(FUZZ_BUILD)/fuzz_vault: $(call FUZZ_OBJ,src/backends/vault_parse.o $(FUZZ_KIT) src/namespace.o \
	src/secret.o src/util.o)
$(FUZZ_BUILD)/fuzz_aws: $(call FUZZ_OBJ,src/backends/aws_parse.o $(FUZZ_KIT) src/namespace.o \
	src/secret.o src/util.o)
$(FUZZ_BUILD)/fuzz_gcp: $(call FUZZ_OBJ,src/backends/gcp_parse.o src/backends/crc32c.o $(FUZZ_KIT) \
	src/namespace.o src/secret.o src/util.o)
$(FUZZ_BUILD)/fuzz_doppler: $(call FUZZ_OBJ,src/backends/doppler_parse.o $(FUZZ_KIT) \
	src/namespace.o src/secret.o src/util.o)
$(FUZZ_BUILD)/fuzz_op: $(call FUZZ_OBJ,src/backends/op_parse.o $(FUZZ_KIT) src/namespace.o \
	src/secret.o src/util.o)
$(FUZZ_BUILD)/fuzz_azure: $(call FUZZ_OBJ,src/backends/azure_parse.o $(FUZZ_KIT) src/namespace.o \
	src/secret.o src/util.o)
$(FUZZ_BUILD)/fuzz_kit: $(call FUZZ_OBJ,$(FUZZ_KIT) src/secret.o src/util.o)
$(FUZZ_BUILD)/fuzz_units: $(call FUZZ_OBJ,src/util.o)
$(FUZZ_BUILD)/fuzz_selector: $(call FUZZ_OBJ,src/selector.o src/util.o)
$(FUZZ_BUILD)/fuzz_escape: $(call FUZZ_OBJ,src/escape.o src/namespace.o src/secret.o src/util.o)
$(FUZZ_BUILD)/fuzz_config: $(call FUZZ_OBJ,src/config.o src/util.o)
$(FUZZ_BUILD)/fuzz_template: $(call FUZZ_OBJ,src/template.o src/escape.o src/namespace.o src/secret.o \
	src/util.o)
# fuzz_http.c includes http.c itself (its curl callbacks are static).
$(FUZZ_BUILD)/fuzz_http: $(call FUZZ_OBJ,src/secret.o src/util.o src/backends/errors.o)
# control.c holds the server too: the target takes what it needs from the library.
$(FUZZ_BUILD)/fuzz_control: $(FUZZ_BUILD)/libsecretfs.a
$(FUZZ_BUILD)/fuzz_aws_creds: $(call FUZZ_OBJ,src/backends/aws_creds_parse.o src/backends/aws_sigv4.o \
	$(FUZZ_KIT) src/namespace.o src/secret.o src/util.o)

# Each target for FUZZ_TIME seconds from its seed corpus (new inputs go to
# $(FUZZ_BUILD)/corpus/NAME, a crasher to $(FUZZ_BUILD)/NAME-crash-*); every
# target runs, then the names of those that failed are given.
fuzz-run: fuzz
	@failed=; for n in $(FUZZ_NAMES); do echo "== fuzz $$n for $(FUZZ_TIME) s"; \
		mkdir -p $(FUZZ_BUILD)/corpus/$$n; \
		$(FUZZ_BUILD)/fuzz_$$n -max_total_time=$(FUZZ_TIME) -timeout=5 -rss_limit_mb=1024 \
			-print_final_stats=1 $$(test -f tests/fuzz/$$n.dict && \
			echo -dict=tests/fuzz/$$n.dict) -artifact_prefix=$(FUZZ_BUILD)/$$n- \
			$(FUZZ_BUILD)/corpus/$$n tests/fuzz/corpus/$$n >$(FUZZ_BUILD)/$$n.log 2>&1; \
		rc=$$?; grep -v -e '^#[0-9]' -e '^	NEW_FUNC' -e '^"' $(FUZZ_BUILD)/$$n.log; \
		[ $$rc -eq 0 ] || failed="$$failed $$n"; done; \
	if [ -n "$$failed" ]; then echo "fuzz-run: failed:$$failed" >&2; exit 1; fi

$(FUZZ_BUILD)/libsecretfs.a: $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
	@rm -f $@
	$(AR) rcs $@ $^

.SECONDARY: $(FUZZ_NAMES:%=$(FUZZ_BUILD)/tests/fuzz/fuzz_%.o) $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $^ $(FUZZ_LIBS)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -MMD -MP -c -o $@ $<

-include $(wildcard $(FUZZ_BUILD)/*/*.d $(FUZZ_BUILD)/*/*/*.d)

# The test servers against the vendors' own clients (hvac), so they cannot drift.
check-servers:
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/servers

check-integration: $(BUILD)/secretfs $(BUILD)/tests/sigv4_tool
	SECRETFS_BIN=$(abspath $(BUILD)/secretfs) SECRETFS_SANITIZER=$(SANITIZER) \
		SECRETFS_BUILD=$(abspath $(BUILD)) \
		$(PYTHON) -m pytest -v -p no:cacheprovider tests/integration

# The README's test command: install what is missing, then run every test.
test: test-deps
	$(MAKE) check

deps:
	@tests/install-deps $(DEB_BUILD) $(DEB_RUN)

test-deps:
	@tests/install-deps $(DEB_BUILD) $(DEB_RUN) $(DEB_TEST)
	@$(MAKE) --no-print-directory node-deps

# The vendors' npm clients, pinned by tests/node/package-lock.json, installed into
# tests/node/node_modules (git-ignored). This is the only step that fetches them;
# the tests never do.
NODE_STAMP := tests/node/node_modules/.package-lock.json
node-deps: $(NODE_STAMP)

$(NODE_STAMP): tests/node/package.json tests/node/package-lock.json
	@tests/install-deps $(DEB_NODE)
	@# Debian's nodejs comes without npm (its own package); NodeSource's has it.
	@command -v npm >/dev/null || tests/install-deps npm
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

DEMO_DIR ?= /tmp/secretfs-demo
DEMO_MNT ?= $(DEMO_DIR)/mnt
demo: deps
	$(MAKE) all
	@mkdir -p $(DEMO_MNT)
	@-fusermount3 -u $(DEMO_MNT) 2>/dev/null || true
	install -m 0600 examples/store.json $(DEMO_DIR)/store.json
	$(BUILD)/secretfs file:$(DEMO_DIR)/store.json $(DEMO_MNT)
	@echo
	@echo "Mounted. Try:  cat $(DEMO_MNT)/prod/db/password; ls -R $(DEMO_MNT)"
	@echo "Unmount with:  fusermount3 -u $(DEMO_MNT)"

demo-stop:
	fusermount3 -u $(DEMO_MNT)

bench: all
	$(MAKE) -C bench
	bench/run $(abspath $(BUILD)/secretfs)

# The soak test (tests/soak/soak.py): N readers, rotation and the fault sequence
# against the Vault and AWS test servers, SOAK_SECONDS of faults each (plus a
# warm-up and a settle period).  SOAK_STRICT=0 reports without failing.
SOAK_SECONDS ?= 60
SOAK_BACKENDS ?= vault aws
SOAK_STRICT ?= 1
soak:
	@tests/install-deps $(DEB_BUILD) $(DEB_RUN) python3 openssl
	$(MAKE) all
	@rc=0; for b in $(SOAK_BACKENDS); do \
		SOAK_STRICT=$(SOAK_STRICT) $(PYTHON) tests/soak/soak.py --backend $$b \
			--seconds $(SOAK_SECONDS) --binary $(abspath $(BUILD)/secretfs) || rc=1; \
	done; exit $$rc

# One integration scenario with the daemon under valgrind; fails on any error
# or definite leak.  A plain build: valgrind and the sanitizers do not mix.
valgrind:
	@tests/install-deps $(DEB_VALGRIND)
	$(MAKE) SANITIZER= all
	SECRETFS_BIN=$(abspath build/secretfs) $(PYTHON) tests/valgrind/run.py

# git-secrets (AWS patterns and the cheat sheet's) over this tree; the allowed
# test fixtures are in .gitallowed, by path.
secret-scan:
	@tests/install-deps $(DEB_SECRET_SCAN)
	tests/secret-scan

# examples/ holds files and one level of directories (container/, kubernetes/, templates/).
EXAMPLE_DIRS := $(patsubst %/.,%,$(wildcard examples/*/.))
EXAMPLE_FILES := $(filter-out $(EXAMPLE_DIRS),$(wildcard examples/*))

# mount.fuse3 runs `secretfs` from PATH for fuse.secretfs: no /sbin/mount.secretfs needed.
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(DOCDIR)/examples
	install -m 0755 $(BUILD)/secretfs $(DESTDIR)$(BINDIR)/secretfs
	install -m 0644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/
	set -e; for u in $(UNITS); do \
		sed 's|/usr/bin/secretfs|$(BINDIR)/secretfs|' systemd/$$u > $(DESTDIR)$(SYSTEMDUNITDIR)/$$u; \
		chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u; done
	install -m 0644 $(EXAMPLE_FILES) $(DESTDIR)$(DOCDIR)/examples/
	set -e; for d in $(EXAMPLE_DIRS); do install -d $(DESTDIR)$(DOCDIR)/$$d; \
		install -m 0644 $$d/* $(DESTDIR)$(DOCDIR)/$$d/; done
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/secretfs $(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(MAN5))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(MAN8))) \
		$(addprefix $(DESTDIR)$(SYSTEMDUNITDIR)/,$(UNITS))
	rm -rf $(DESTDIR)$(DOCDIR)

format:
	clang-format -i $(wildcard src/*.c src/*.h src/fs/*.[ch] src/backends/*.[ch] \
		include/secretfs/*.h tests/unit/*.[ch] bench/*.c)

clean:
	rm -rf build build-*
	$(MAKE) -C bench clean 2>/dev/null || true
