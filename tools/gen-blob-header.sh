#!/bin/sh
# Turn the flat restorer blob into a C header: the bytes, and the offsets
# of its exported symbols (lz_blob_*), read from the ELF it came from.
set -e
bin=$1
elf=$2
echo "/* Generated from $bin by tools/gen-blob-header.sh. Do not edit. */"
echo "#ifndef LZ_RESTORER_BLOB_H"
echo "#define LZ_RESTORER_BLOB_H"
echo "static const unsigned char restorer_blob[] __attribute__((aligned(4096))) = {"
xxd -i < "$bin"
echo "};"
nm "$elf" | awk '$3 ~ /^lz_blob_/ { printf "#define %s_OFF 0x%sUL\n", toupper($3), $1 }'
echo "#endif"
