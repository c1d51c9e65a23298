# Lazarus build. `make` builds build/lazarus; `make check` runs every test;
# `make demo` shows a checkpoint and restore; `make bench` measures.
# SANITIZE=address|undefined (or both, comma-separated) builds everything
# but the restorer blob with that sanitizer, every report fatal; O=DIR puts
# the build there (e.g. make O=build-san SANITIZE=address,undefined; point
# the tests at it with LAZARUS_BUILD=build-san).

CC	?= gcc
O	:= build
V	?= 0
Q	:= $(if $(filter 1,$(V)),,@)

WARN	:= -Wall -Wextra -Werror -Wno-missing-field-initializers
CFLAGS	:= -O2 -g -std=gnu11 -D_GNU_SOURCE $(WARN) -fno-strict-aliasing
CPPFLAGS := -Iinclude -Iimages -I$(O)/images -I$(O)/gen -Isrc -Iplugin
# libnl: sock_diag requests (src/sk-diag.c)
NL_CFLAGS := $(shell pkg-config --cflags libnl-3.0)
NL_LIBS	:= $(shell pkg-config --libs libnl-3.0)
CPPFLAGS += $(NL_CFLAGS)
# Linked in, not loaded: every lazarus start (restore's time to running)
# saves the loader's work for three libraries (Documentation/bench.md).
LDLIBS	:= -Wl,-Bstatic -lprotobuf-c -lcap $(NL_LIBS) -Wl,-Bdynamic

ifneq ($(SANITIZE),)
CFLAGS	+= -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS	+= -fsanitize=$(SANITIZE)
endif

PROTOS		:= $(wildcard images/*.proto)
PB_C		:= $(patsubst images/%.proto,$(O)/images/%.pb-c.c,$(PROTOS))
PB_H		:= $(PB_C:.c=.h)
PB_OBJ		:= $(PB_C:.c=.o)

LIB_SRC		:= $(wildcard images/*.c) $(filter-out src/main.c,$(wildcard src/*.c)) \
		   $(wildcard plugin/*.c)
LIB_OBJ		:= $(patsubst %.c,$(O)/%.o,$(LIB_SRC)) $(PB_OBJ)
LIB		:= $(O)/liblazarus.a
BIN		:= $(O)/lazarus

# The restorer blob: freestanding PIE code, no libc, no sanitizers, no
# fortify, linked flat and embedded as a byte array.
BLOB_SRC	:= $(wildcard plugin/blob/*.c)
BLOB_OBJ	:= $(patsubst %.c,$(O)/%.o,$(BLOB_SRC))
BLOB_CFLAGS	:= -O2 -g -std=gnu11 -D_GNU_SOURCE $(WARN) -fpie -fno-plt \
		   -ffreestanding -fno-stack-protector -fno-builtin -nostdlib \
		   -fno-asynchronous-unwind-tables -fno-exceptions -fvisibility=hidden \
		   -fcf-protection=none -mno-red-zone -U_FORTIFY_SOURCE \
		   -fno-jump-tables -Iinclude -Iplugin -Iplugin/blob
BLOB_HDR	:= $(O)/gen/restorer-blob.h

WORKLOADS	:= $(patsubst test/workloads/%.c,$(O)/test/%,$(wildcard test/workloads/*.c))
UNIT_SRC	:= $(wildcard test/unit/*.c)
UNIT_BIN	:= $(patsubst test/unit/%.c,$(O)/test/unit/%,$(UNIT_SRC))

PYTEST		?= /usr/bin/python3 -m pytest
PYTEST_ARGS	?=

all: $(BIN) $(WORKLOADS)

$(O)/images/%.pb-c.c $(O)/images/%.pb-c.h: images/%.proto
	@mkdir -p $(dir $@)
	$(Q)protoc-c --proto_path=images --c_out=$(O)/images $<

# A .pb-c.c includes the headers of the .proto files it imports.
$(O)/images/%.pb-c.o: $(O)/images/%.pb-c.c $(PB_H)
	$(Q)$(CC) $(CPPFLAGS) -O2 -g -Wall -c -o $@ $<

$(O)/%.o: %.c $(PB_H) $(BLOB_HDR)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(O)/plugin/blob/%.o: plugin/blob/%.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(BLOB_CFLAGS) -MMD -MP -c -o $@ $<

$(O)/blob/restorer.elf: $(BLOB_OBJ) plugin/blob/blob.lds
	@mkdir -p $(dir $@)
	$(Q)ld -nostdlib -static -pie --no-dynamic-linker -z noexecstack -T plugin/blob/blob.lds \
		-o $@ $(BLOB_OBJ)
	$(Q)if readelf -r $@ | grep -q R_X86_64; then \
		echo "restorer blob needs relocations; it must be position independent" >&2; \
		readelf -r $@ >&2; rm -f $@; exit 1; fi

$(O)/blob/restorer.bin: $(O)/blob/restorer.elf
	$(Q)objcopy -O binary $< $@

$(BLOB_HDR): $(O)/blob/restorer.bin $(O)/blob/restorer.elf
	@mkdir -p $(dir $@)
	$(Q)tools/gen-blob-header.sh $(O)/blob/restorer.bin $(O)/blob/restorer.elf > $@.tmp && mv $@.tmp $@

$(LIB): $(LIB_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN): $(O)/src/main.o $(LIB)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(O)/test/%: test/workloads/%.c test/workloads/wl.h
	@mkdir -p $(dir $@)
	$(Q)$(CC) -O2 -g -std=gnu11 -D_GNU_SOURCE $(WARN) -o $@ $< -lm

# The lazy-pages harness drives the daemon through the library's client API.
$(O)/test/lzlazyharness: test/workloads/lzlazyharness.c $(LIB)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS) -lpthread

$(O)/test/unit/%: test/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# Fuzzing (clang's libFuzzer with ASan+UBSan, every UB report fatal).
# `make fuzz` runs each target for FUZZ_SECONDS on a corpus seeded from a
# fresh dump (tools/fuzz-seed.sh) plus the committed regression inputs in
# test/fuzz/regress/<target>/. A crash, leak, timeout or sanitizer report
# fails make and prints the whole report (test/fuzz/run.sh); Documentation/
# testing.md describes the targets. The library is built again with clang
# and coverage instrumentation under $(O)/fuzz/obj.
FUZZ_SECONDS	?= 20
FUZZ_CC		?= clang
FUZZ_SAN	:= -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS	:= -g -O1 -std=gnu11 -D_GNU_SOURCE -fno-strict-aliasing $(FUZZ_SAN)
FUZZ_DIR	:= $(O)/fuzz
FUZZ_OBJ	:= $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(LIB_SRC)) \
		   $(patsubst $(O)/%.c,$(FUZZ_DIR)/obj/%.o,$(PB_C))
FUZZ_LIB	:= $(FUZZ_DIR)/liblazarus.a
# target:max_len
FUZZ_TARGETS	:= fuzz_image:65536 fuzz_lazy_msg:8192 fuzz_verify:65536 \
		   fuzz_lazy_source:200000 fuzz_lazy_conn:65536 fuzz_proc_timers:8192
FUZZ_BIN	:= $(foreach t,$(FUZZ_TARGETS),$(FUZZ_DIR)/$(firstword $(subst :, ,$(t))))

$(FUZZ_DIR)/obj/%.o: %.c $(PB_H) $(BLOB_HDR)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/obj/images/%.pb-c.o: $(O)/images/%.pb-c.c $(PB_H)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

# The daemon's connection handlers are linked alone, with test doubles for
# the per-process side (lazy-proc.c) and epoll (lazy-daemon.c).
$(FUZZ_DIR)/fuzz_lazy_conn: test/fuzz/fuzz_lazy_conn.c test/fuzz/records.h \
		$(FUZZ_DIR)/obj/src/lazy-conn.o $(FUZZ_DIR)/obj/src/lazy-sock.o $(FUZZ_DIR)/obj/src/log.o \
		$(FUZZ_DIR)/obj/src/safe-file.o $(FUZZ_LIB)
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(filter %.o,$^) \
		$(FUZZ_LIB) $(LDLIBS)

$(FUZZ_DIR)/%: test/fuzz/%.c test/fuzz/records.h $(FUZZ_LIB)
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB) $(LDLIBS)

# Turns a dump into seed inputs for every target (tools/fuzz-seed.sh).
$(FUZZ_DIR)/mkseed: test/fuzz/mkseed.c test/fuzz/records.h $(LIB)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

fuzz: $(FUZZ_BIN) $(FUZZ_DIR)/mkseed $(BIN) $(O)/test/lzwork $(O)/test/lzevents
	$(Q)tools/fuzz-seed.sh $(O) $(FUZZ_DIR)
	$(Q)$(foreach t,$(FUZZ_TARGETS),test/fuzz/run.sh $(FUZZ_DIR)/$(firstword $(subst :, ,$(t))) \
		$(FUZZ_SECONDS) $(lastword $(subst :, ,$(t))) &&) true

deps:
	$(Q)tools/install-deps.sh

unit: $(UNIT_BIN)
	$(Q)tools/run-unit.sh $(UNIT_BIN)

check: deps
	$(Q)$(MAKE) --no-print-directory all unit
	$(Q)$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10
	$(Q)$(PYTEST) -v test $(PYTEST_ARGS)

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tools/demo.sh

clean:
	rm -rf $(O)

.PHONY: all deps unit check demo clean fuzz
.SECONDARY: $(PB_C) $(PB_H)

-include $(shell find $(O) -name '*.d' 2>/dev/null)

# `make bench` (root): the machine's limits (bench/*.c) and Lazarus measured
# against them in one run; writes build/bench/bench.json (its "targets":
# issue 10's targets judged, also printed last). Documentation/bench.md.
# BENCH_MIB: lzwork sizes; BENCH_REPS: repetitions of everything;
# BENCH_REDIS_MIB: data in the redis-server of the redis part (smaller is
# quicker); CRIU=/path/to/criu measures CRIU beside Lazarus in the same run
# (nothing of CRIU runs without it); BENCH_PARTS: only some parts. Quick:
#   make bench BENCH_MIB="64 512" BENCH_REPS=3 BENCH_PARTS="sizes ws thp"
#   make bench BENCH_PARTS="sizes criu" BENCH_MIB="64 512" BENCH_REPS=3 CRIU=/path/to/criu
BENCH_MIB	?= 64 256 1024
BENCH_REPS	?= 5
BENCH_REDIS_MIB	?= 1024
BENCH_REDIS_GETS ?= 10000
BENCH_PARTS	?= sizes shm shmmodes programs ws thp faults redis
CRIU		?=
BENCH_BIN	:= $(patsubst bench/%.c,$(O)/bench/%,$(wildcard bench/*.c))

$(O)/bench/%: bench/%.c bench/bench.h bench/bench_uffd.h
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< -lpthread

bench: all $(BENCH_BIN)
	$(Q)/usr/bin/python3 bench/bench.py --mib "$(BENCH_MIB)" --reps $(BENCH_REPS) \
		--parts "$(BENCH_PARTS)" --redis-mib $(BENCH_REDIS_MIB) \
		--redis-gets $(BENCH_REDIS_GETS) $(if $(CRIU),--criu "$(CRIU)") \
		--out $(O)/bench/bench.json

.PHONY: bench
