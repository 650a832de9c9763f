#!/usr/bin/env bash
# Set up kvmtop on a Debian/Ubuntu machine, as root. Re-running is fast and harmless.
# Says every change it makes to the system.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (sudo make setup): it installs packages and loads BPF programs" >&2
  exit 1
fi

missing=()
for pkg in python3-bpfcc python3-venv tmux; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# kvmtop report reads perf.data and trace.dat through perf script and trace-cmd report
command -v trace-cmd >/dev/null 2>&1 || missing+=(trace-cmd)
if ! command -v perf >/dev/null 2>&1; then
  if grep -qs '^ID=ubuntu' /etc/os-release; then missing+=(linux-tools-generic); else missing+=(linux-perf); fi
fi

release=$(uname -r)
if [ ! -e "/lib/modules/$release/build" ]; then
  # Headers for the running kernel if the distribution has them, else its generic ones
  # (tracepoint programs only need them to compile; layouts come from tracefs).
  generic="linux-headers-$(dpkg --print-architecture)"
  if ! dpkg -s "linux-headers-$release" >/dev/null 2>&1 && ! dpkg -s "$generic" >/dev/null 2>&1; then
    apt_updated=1
    echo "setup: apt-get update"
    apt-get update -qq
    if apt-cache show "linux-headers-$release" >/dev/null 2>&1; then
      missing+=("linux-headers-$release")
    else
      missing+=("$generic")
    fi
  fi
fi

# The peers bench/bench_guest_slowdown.py measures kvmtop against (perf, bpftrace).
for pkg in linux-perf bpftrace; do
  dpkg -s "$pkg" >/dev/null 2>&1 && continue
  if ! apt-cache show "$pkg" >/dev/null 2>&1 && [ -z "${apt_updated:-}" ]; then
    apt_updated=1
    echo "setup: apt-get update"
    apt-get update -qq
  fi
  if apt-cache show "$pkg" >/dev/null 2>&1; then
    missing+=("$pkg")
  else
    echo "setup: $pkg is not packaged here: bench_guest_slowdown.py will skip that peer"
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  [ -n "${apt_updated:-}" ] || { echo "setup: apt-get update"; apt-get update -qq; }
  echo "setup: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The Prometheus server and promtool: the exporter's tests scrape it with a real server and
# check the alert rules (contrib/prometheus/). Without its recommended node exporter.
if ! dpkg -s prometheus >/dev/null 2>&1; then
  [ -n "${apt_updated:-}" ] || { echo "setup: apt-get update"; apt-get update -qq; apt_updated=1; }
  echo "setup: installing prometheus (the Prometheus server and promtool, for the exporter's tests)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv from /usr/bin/python3 (system site-packages, for bcc)"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
echo "setup: installing kvmtop and its test extras into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

# A private header tree pointed at through BCC_KERNEL_SOURCE, when the running kernel has none.
.venv/bin/python -m kvmtop.bpf.headers

if ! [ -d /sys/kernel/tracing/events ] && ! [ -d /sys/kernel/debug/tracing/events ]; then
  echo "setup: mounting tracefs at /sys/kernel/tracing"
  mount -t tracefs nodev /sys/kernel/tracing
fi

bash scripts/launcher.sh
echo "setup: done"
