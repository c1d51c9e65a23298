# Lazarus build. `make` builds build/lazarus; `make check` runs every test;
# `make demo` shows a checkpoint and restore; `make bench` measures.
# SANITIZE=address|undefined builds everything but the restorer blob with
# that sanitizer.

CC	?= gcc
O	:= build
V	?= 0
Q	:= $(if $(filter 1,$(V)),,@)

WARN	:= -Wall -Wextra -Werror -Wno-missing-field-initializers
CFLAGS	:= -O2 -g -std=gnu11 -D_GNU_SOURCE $(WARN) -fno-strict-aliasing
CPPFLAGS := -Iinclude -Iimages -I$(O)/images -I$(O)/gen -Isrc -Iplugin
LDLIBS	:= -lprotobuf-c -lcap

ifneq ($(SANITIZE),)
CFLAGS	+= -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
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

$(O)/images/%.pb-c.o: $(O)/images/%.pb-c.c
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

# Fuzzing (clang's libFuzzer with ASan+UBSan). `make fuzz` runs each target
# for FUZZ_SECONDS, seeded with real images when test/fuzz/corpus exists.
FUZZ_SECONDS	?= 20
FUZZ_CC		?= clang
FUZZ_SRC	:= images/image.c images/crc32c.c src/safe-file.c
$(O)/fuzz/fuzz_image: test/fuzz/fuzz_image.c $(FUZZ_SRC) $(PB_C) $(PB_H)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined $(CPPFLAGS) \
		-o $@ test/fuzz/fuzz_image.c $(FUZZ_SRC) $(PB_C) -lprotobuf-c

$(O)/fuzz/fuzz_lazy_msg: test/fuzz/fuzz_lazy_msg.c src/lazy-sock.c src/lazy-sock.h src/lazy-proto.h
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined $(CPPFLAGS) \
		-o $@ test/fuzz/fuzz_lazy_msg.c src/lazy-sock.c

fuzz: $(O)/fuzz/fuzz_image $(O)/fuzz/fuzz_lazy_msg
	@mkdir -p $(O)/fuzz/corpus $(O)/fuzz/corpus-lazy
	$(Q)tools/fuzz-seed.sh $(O)/fuzz/corpus
	$(Q)$(O)/fuzz/fuzz_image -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 \
		$(O)/fuzz/corpus 2>&1 | tail -n 5
	$(Q)$(O)/fuzz/fuzz_lazy_msg -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -print_final_stats=1 \
		$(O)/fuzz/corpus-lazy 2>&1 | tail -n 5

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
# against them in one run; writes build/bench/bench.json. Documentation/bench.md.
BENCH_MIB	?= 64 256 1024
BENCH_REPS	?= 5
BENCH_BIN	:= $(patsubst bench/%.c,$(O)/bench/%,$(wildcard bench/*.c))

$(O)/bench/%: bench/%.c bench/bench.h
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< -lpthread

bench: all $(BENCH_BIN)
	$(Q)/usr/bin/python3 bench/bench.py --mib "$(BENCH_MIB)" --reps $(BENCH_REPS) \
		--out $(O)/bench/bench.json

.PHONY: bench
