#!/bin/sh
# Install the Debian packages Lazarus needs to build and test, when missing.
set -e
PKGS="gcc make binutils protobuf-c-compiler libprotobuf-c-dev libcap-dev python3 python3-pytest xxd clang libclang-rt-14-dev manpages-dev pkg-config libnl-3-dev nftables iproute2 redis-server memcached nginx-light curl"
# PostgreSQL 15 for test_postgres.py / test_servers_lazy.py (the tests run clusters of their own).
PKGS="$PKGS postgresql"
# sqlite3 for test_sqlite.py (an outside writer and integrity checks).
PKGS="$PKGS sqlite3"
# tmux for test_tmux.py (a real tmux server restored).
PKGS="$PKGS tmux"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing packages:$missing (run as root, or install them)" >&2
	exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq $missing >/dev/null
