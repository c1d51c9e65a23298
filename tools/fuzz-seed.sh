#!/bin/sh
# Seed the image fuzzer's corpus: a kind byte followed by a real image file,
# for every image found under test/fuzz/seeds (if any) and a fresh dump.
set -e
out=$1
for f in test/fuzz/seeds/*.img; do
	[ -f "$f" ] || continue
	kind=$(build/lazarus show "$f" 2>/dev/null | sed -n 's/.*"kind": "\([a-z]*\)".*/\1/p' | head -1)
	case $kind in
	inventory) k=0 ;; pstree) k=1 ;; core) k=2 ;; task) k=3 ;; sigacts) k=4 ;;
	mm) k=5 ;; pagemap) k=6 ;; pages) k=7 ;; fs) k=8 ;; files) k=9 ;; fdinfo) k=10 ;;
	*) continue ;;
	esac
	{ printf "\\$(printf '%03o' $k)"; head -c 65535 "$f"; } > "$out/seed-$(basename "$f")"
done
