#!/usr/bin/env bash
# One set-up for `npm test`, `npm run demo` and `npm run bench`: installs what a fresh
# Debian machine lacks (as root), installs npm packages from the lockfile, builds.
set -euo pipefail
cd "$(dirname "$0")/.."

# Node 20 or newer (Debian 12's own nodejs package is 18: too old).
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo none)
if [ "$node_major" = none ]; then
  echo "setup: node is not installed; install Node.js 20 or newer (the official Node.js binaries, or the NodeSource Debian packages), then run this again" >&2
  exit 1
fi
if ! [ "$node_major" -ge 20 ] 2>/dev/null; then
  echo "setup: Node.js $(node -v 2>/dev/null) is too old; tcpcopy needs Node.js 20 or newer (Debian 12's nodejs package is 18: install a newer one: the official Node.js binaries, or the NodeSource Debian packages)" >&2
  exit 1
fi

need=()
[ -f /usr/include/pcap/pcap.h ] || need+=(libpcap-dev)
command -v ip >/dev/null || need+=(iproute2)
command -v tcpdump >/dev/null || need+=(tcpdump)
command -v tshark >/dev/null || need+=(tshark)
command -v ethtool >/dev/null || need+=(ethtool)
command -v nstat >/dev/null || need+=(iproute2)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
command -v nft >/dev/null || need+=(nftables)
command -v tc >/dev/null || need+=(iproute2)
# MySQL replay e2e: the tests start their own mariadbd per namespace (never the packaged service).
command -v mariadbd >/dev/null || need+=(mariadb-server)
command -v mariadb-slap >/dev/null || need+=(mariadb-client)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages (${need[*]}); run as root or: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
  # Packaged services (mariadb, nginx, redis) must not start in the root namespace: the tests
  # start their own servers inside their namespaces. A policy-rc.d that refuses every start,
  # only for this install, when the machine has none of its own.
  policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy_added=1
    trap '[ "$policy_added" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  if ! apt-get install -y --no-install-recommends "${need[@]}" >/tmp/tcpcopy-apt.log 2>&1; then
    apt-get update >>/tmp/tcpcopy-apt.log 2>&1
    apt-get install -y --no-install-recommends "${need[@]}" >>/tmp/tcpcopy-apt.log 2>&1 || {
      echo "setup: apt-get failed, see /tmp/tcpcopy-apt.log" >&2; tail -20 /tmp/tcpcopy-apt.log >&2; exit 1; }
  fi
  if [ "$policy_added" = 1 ]; then rm -f /usr/sbin/policy-rc.d; policy_added=0; fi
fi

# Optional: promtool checks the metrics exposition format. It comes from the Debian package
# prometheus, of which only the promtool binary is unpacked (installing the package would also
# start a Prometheus server). The tests that need it skip with the reason when it is missing,
# so a failure here is not fatal.
if ! command -v promtool >/dev/null && [ "$(id -u)" = 0 ] && [ "${TCPCOPY_SKIP_OPTIONAL:-}" != 1 ]; then
  echo "setup: unpacking promtool from the Debian package prometheus" >&2
  d=$(mktemp -d)
  if (cd "$d" && apt-get download prometheus >>/tmp/tcpcopy-apt.log 2>&1 && dpkg-deb -x prometheus_*.deb x \
      && install -m 0755 x/usr/bin/promtool /usr/local/bin/promtool); then :; else
    echo "setup: promtool not installed (see /tmp/tcpcopy-apt.log); the exposition-format checks will be skipped" >&2
  fi
  rm -rf "$d"
fi

# npm packages: install from the lockfile when node_modules is missing or older than it.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
   || [ ! -f node_modules/cap/build/Release/cap.node ] || [ ! -f node_modules/raw-socket/build/Release/raw.node ] \
   || [ ! -f native/build/Release/tcpcopy_native.node ] || [ native/src/addon.cc -nt native/build/Release/tcpcopy_native.node ]; then
  echo "setup: npm ci" >&2
  if ! npm ci --no-audit --no-fund >/tmp/tcpcopy-npm.log 2>&1; then
    grep -v 'Unknown user config' /tmp/tcpcopy-npm.log | tail -30 >&2; echo "setup: npm ci failed" >&2; exit 1
  fi
  [ -f node_modules/cap/build/Release/cap.node ] || { echo "setup: the cap addon did not build (is libpcap-dev installed?)" >&2; exit 1; }
  # Our own addon (native/): npm ci builds it with node-gyp, like cap and raw-socket.
  [ -f native/build/Release/tcpcopy_native.node ] || { echo "setup: our packet addon (native/) did not build: see /tmp/tcpcopy-npm.log (needs g++, make and libpcap-dev)" >&2; exit 1; }
fi

echo "setup: building" >&2
./node_modules/.bin/tsc -p tsconfig.json
node scripts/man.js >/dev/null
