#!/usr/bin/env bash
# One-time (idempotent) set-up of a fresh machine for `make test` and `make demo`:
#   1. Debian packages: prometheus (gives promtool too);
#   2. the Python virtualenv .venv with the package and its test extras;
#   3. the Go-built stack components and deploy tools (helm, kustomize) (tools/build.sh; cached by
#      version in ~/.cache/llm-autoscaler).
# Every step is skipped when already done, so a warm run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

command -v go >/dev/null || { echo "error: Go not found: install Go >= 1.26 (it builds kube-apiserver, etcd and kwok from Go modules)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "error: python3 not found: install Python >= 3.11" >&2; exit 1; }

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  say "installing Debian's prometheus package"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# Debian's package starts a system Prometheus where systemd runs; the stack runs its own.

stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  say "creating .venv and installing llm-autoscaler[test]"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  rm -f .venv/.installed-*; touch "$stamp"
fi

say "building the stack's Go components (cached: seconds; cold: ~15-30 min on 2 cores)"
tools/build.sh
