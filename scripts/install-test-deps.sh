#!/bin/sh
# Install the Debian packages the test suites drive (Debian 12, run as root).
#
# Idempotent: when every package is already installed it does nothing (no apt-get update,
# no network) and returns in well under a second.
#
#   skopeo podman buildah   containers-image clients (buildah pulls in uidmap)
#   containerd runc         the private containerd behind `ctr` and dockerd
#   docker.io               dockerd + the docker CLI (20.10)
#   busybox-static          /bin/busybox, the base layer of every test image
#   docker-registry         CNCF Distribution 2.8.2 (registry:2): the reference server
#   nginx                   TLS reverse proxy / load balancer in front of Dockyard
#   postgresql              PostgreSQL 15 (/usr/lib/postgresql/15/bin): the suites' second
#                           metadata database; tests/postgres.py starts its own cluster
#   pebble                  Let's Encrypt's ACME test server (2.4): the CA of the
#                           http.tls.letsencrypt tests; tests/pebble.py starts its own
#   prometheus              Prometheus 2.42 + promtool: scrapes a live Dockyard and checks the
#                           shipped dashboard and alert rules (tests/prometheus.py)
#
# The Python side (oras, python-dxf, pytest...) comes from `pip install -e '.[test]'`.
set -eu

PACKAGES="skopeo podman buildah containerd runc docker.io busybox-static docker-registry nginx postgresql pebble prometheus"

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: must run as root" >&2
    exit 1
fi

missing=""
for pkg in $PACKAGES; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "installed" ]; then
        missing="$missing $pkg"
    fi
done
# npm installs Azurite (the Azure emulator) for the tests, tests/azurite.py. Any npm will
# do (a machine may have Node from elsewhere); without one, Debian's.
if ! command -v npm >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi

if [ -z "$missing" ]; then
    echo "install-test-deps: all present ($PACKAGES)"
    exit 0
fi

echo "install-test-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# No service may start during installation: there is no init system in CI containers, and
# the tests run their own daemons (dockerd, containerd, nginx, docker-registry, postgres)
# by hand.
policy_rc=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy_rc" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy_rc"
    chmod 755 "$policy_rc"
    created_policy=1
fi
cleanup() {
    if [ -n "$created_policy" ]; then
        rm -f "$policy_rc"
    fi
}
trap cleanup EXIT

log=$(mktemp)
# shellcheck disable=SC2086 # word splitting of the package list is intended
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "install-test-deps: apt-get failed (output above)" >&2
    exit 1
fi
rm -f "$log"

for pkg in $missing; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "installed" ]; then
        echo "install-test-deps: $pkg is still not installed" >&2
        exit 1
    fi
done
echo "install-test-deps: done"
