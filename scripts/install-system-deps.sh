#!/usr/bin/env bash
# Installs the Debian packages that the integration tests, benchmarks and soak runs need:
# redis-server, chromium, the PostgreSQL 15 server, pgbouncer, mariadb-server, and what pip needs
# to build mysqlclient (default-libmysqlclient-dev, pkg-config). Idempotent, and quiet when all
# is there. As a non-root user it only says what is missing: the tests that need it then skip.
set -euo pipefail

PG_BINDIR=/usr/lib/postgresql/15/bin
APT_LOCK_WAIT=600 # seconds to wait for another apt-get/dpkg to let go of its lock

missing=()
[ -x /usr/bin/redis-server ] || command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
for bin in postgres initdb pg_ctl pg_isready psql; do
    if [ ! -x "$PG_BINDIR/$bin" ]; then
        missing+=(postgresql-15)
        break
    fi
done
[ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
{ [ -x /usr/sbin/mariadbd ] && [ -x /usr/bin/mariadb-install-db ]; } || missing+=(mariadb-server)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
# mysqlclient's build asks pkg-config for mysqlclient (or mariadb) and needs its headers.
if ! { command -v pkg-config >/dev/null 2>&1 &&
    pkg-config --exists mysqlclient 2>/dev/null; }; then
    missing+=(default-libmysqlclient-dev)
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-system-deps: redis-server, chromium, postgresql-15, pgbouncer, mariadb-server" \
        "and mysqlclient's build dependencies are installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: missing ${missing[*]}; not root, so not installing" \
        "(tests that need them will skip)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: missing ${missing[*]}, and there is no apt-get to install them" >&2
    exit 1
fi

log=$(mktemp /tmp/install-system-deps.XXXXXX.log)
export DEBIAN_FRONTEND=noninteractive
apt_options=(-q -o "DPkg::Lock::Timeout=$APT_LOCK_WAIT" -o Dpkg::Use-Pty=0)

# DPkg::Lock::Timeout covers dpkg's lock; the lists and archive locks of a concurrent
# apt-get are waited for here, by retrying while apt says it could not get a lock.
apt_get() {
    local deadline=$((SECONDS + APT_LOCK_WAIT))
    while true; do
        if apt-get "${apt_options[@]}" "$@" >>"$log" 2>&1; then
            return 0
        fi
        if ! tail -n 5 "$log" | grep -qiE 'could not get lock|unable to (acquire|lock)'; then
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            return 1
        fi
        sleep 5
    done
}

fail() {
    echo "install-system-deps: $1; last lines of $log:" >&2
    tail -n 20 "$log" >&2
    exit 1
}

apt_get update || fail "apt-get update failed"
apt_get install -y --no-install-recommends "${missing[@]}" || fail "installing ${missing[*]} failed"

still_missing=()
[ -x /usr/bin/redis-server ] || still_missing+=(redis-server)
[ -x /usr/bin/chromium ] || still_missing+=(chromium)
[ -x "$PG_BINDIR/postgres" ] && [ -x "$PG_BINDIR/initdb" ] || still_missing+=(postgresql-15)
[ -x /usr/sbin/pgbouncer ] || still_missing+=(pgbouncer)
[ -x /usr/sbin/mariadbd ] || still_missing+=(mariadb-server)
pkg-config --exists mysqlclient 2>/dev/null || still_missing+=(default-libmysqlclient-dev)
if [ ${#still_missing[@]} -ne 0 ]; then
    fail "installed, but ${still_missing[*]} still missing"
fi
rm -f "$log"
echo "install-system-deps: installed ${missing[*]}"
