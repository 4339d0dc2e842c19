#!/bin/sh
# Debian packages that `make bench` drives. Safe to run again and again: when dpkg-query
# reports every package installed it prints one line and exits, without apt-get and without
# network access (so it does not need root either).
#
#   docker-registry   Distribution 2.8.2, the code inside the registry:2 image (the baseline)
#   wrk               HTTP request-rate load generator used by regbench
#   apache2-utils     ab, which regbench uses for HEAD request rates
#   nginx             sendfile reference for "how fast can this machine serve a file"
#   curl              second-opinion client for the big blob upload and download
#   valgrind          callgrind, which bench.metrics_instructions counts instructions with
#
# Services are kept from starting during installation: the benchmark starts its own
# docker-registry and nginx by hand, on private ports, and stops them when it is done.
set -eu

PACKAGES="docker-registry wrk apache2-utils nginx curl valgrind"

not_installed() {
    for pkg in $PACKAGES; do
        state=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
        if [ "$state" != "installed" ]; then
            printf ' %s' "$pkg"
        fi
    done
}

missing=$(not_installed)
if [ -z "$missing" ]; then
    echo "install-bench-deps: nothing to do ($PACKAGES already installed)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-bench-deps: missing:$missing; run this script as root to install them" >&2
    exit 1
fi

echo "install-bench-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive

blocker=/usr/sbin/policy-rc.d
own_blocker=""
if [ ! -e "$blocker" ]; then
    printf '#!/bin/sh\n# written by install-bench-deps.sh: no service starts on install\nexit 101\n' >"$blocker"
    chmod 0755 "$blocker"
    own_blocker=yes
fi
output=$(mktemp)
finish() {
    rm -f "$output"
    if [ -n "$own_blocker" ]; then
        rm -f "$blocker"
    fi
}
trap finish EXIT

# shellcheck disable=SC2086 # $missing is a space-separated package list on purpose
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } >"$output" 2>&1; then
    cat "$output" >&2
    echo "install-bench-deps: apt-get failed, see its output above" >&2
    exit 1
fi

still=$(not_installed)
if [ -n "$still" ]; then
    echo "install-bench-deps: still missing after apt-get:$still" >&2
    exit 1
fi
echo "install-bench-deps: installed:$missing"
