#!/usr/bin/env bash
# Install the Debian packages the TPM secure element (computewatch.chip, URI
# tpm:HOST:PORT) and its tests need: the swtpm TPM 2.0 simulator, and what
# `pip install tpm2-pytss` needs to build against tpm2-tss (libtss2-dev,
# pkg-config, a C compiler, and Python's headers when the interpreter lacks
# them); and PostgreSQL (postgresql), which the registry tests and benchmark
# start themselves with initdb and pg_ctl (computewatch.supplychain); and
# iproute2 (ip, tc), which the location tests use to put landmarks and chips
# in network namespaces (they skip without root; netem needs sch_netem).
# Chromium (chromium, chromium-driver), which the audit report's test opens
# headless (tests/inspection/test_audit_cli.py; never a downloaded browser).
# Idempotent: when everything is installed it changes nothing and skips
# `apt-get update`. Run as root (or with sudo available) on Debian 12.
#
#   scripts/install-system-deps.sh               # what the build and tests need
#   scripts/install-system-deps.sh --with-tools  # plus swtpm-tools, tpm2-tools (debugging)
#
# PYTHON (default: .venv/bin/python, else python3) is the interpreter that
# will build tpm2-pytss; python3-dev is added only if its Python.h is missing.
# Then: .venv/bin/python -m pip install -e '.[tpm]'
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(swtpm libtss2-dev pkg-config gcc libc6-dev postgresql iproute2 chromium chromium-driver)
for arg in "$@"; do
  case "$arg" in
    --with-tools) packages+=(swtpm-tools tpm2-tools) ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "install-system-deps: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if include=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null); then
  [ -f "$include/Python.h" ] || packages+=(python3-dev)
else
  packages+=(python3-dev)
fi

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-system-deps: already installed: ${packages[*]}"
  exit 0
fi

if ! command -v apt-get > /dev/null; then
  echo "install-system-deps: needs apt-get (Debian/Ubuntu); install by hand: ${missing[*]}" >&2
  exit 2
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo > /dev/null; then
    sudo=(sudo)
  else
    echo "install-system-deps: run as root (or install sudo) to install: ${missing[*]}" >&2
    exit 2
  fi
fi

echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
run_quietly() {  # show apt's output only if it fails
  if ! "$@" > "$log" 2>&1; then
    cat "$log" >&2
    echo "install-system-deps: failed: $*" >&2
    exit 1
  fi
}
run_quietly "${sudo[@]}" apt-get update -qq
run_quietly "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-system-deps: done"
