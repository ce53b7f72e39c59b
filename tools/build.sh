#!/usr/bin/env bash
# Build the local stack's Go components from Go modules (through the module proxy) and cache
# the binaries outside the repo, keyed by version:
#   ${LLM_AUTOSCALER_CACHE:-~/.cache/llm-autoscaler}/bin/<component>-<version>/<binary>
# A component whose cached binaries exist is skipped, so a warm run costs nothing.
# Usage: tools/build.sh [k8s] [etcd] [kwok] [inference-sim] [helm] [kustomize] [prometheus-adapter]
# (default: all but prometheus-adapter, which only bench/bench_metrics_api.py uses)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${LLM_AUTOSCALER_CACHE:-$HOME/.cache/llm-autoscaler}
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -mod=mod"
command -v go >/dev/null || { echo "error: 'go' not found on PATH; install Go >= 1.26 (https://go.dev/doc/install) and re-run" >&2; exit 1; }

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

build_k8s() {
  local out="$cache/bin/k8s-$K8S_VERSION"
  if [[ -x $out/kube-apiserver && -x $out/kube-controller-manager && -x $out/kube-scheduler ]]; then
    log "k8s $K8S_VERSION cached in $out"; return; fi
  mkdir -p "$out.tmp"
  local minor; minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  local v="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1
    -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean
    -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z
    -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1
    -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  cd "$here/k8s"
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    log "building $c $K8S_VERSION (cold: 10-20 min on 2 cores)"
    go build -tags selinux,notest,grpcnotrace -ldflags "-s -w $v" -o "$out.tmp/$c" "k8s.io/kubernetes/cmd/$c"
  done
  rm -rf "$out"; mv "$out.tmp" "$out"; log "k8s done: $out"
}

build_simple() { # name version dir pkg binary
  local name=$1 version=$2 dir=$3 pkg=$4 bin=$5 ldflags=${6:-}
  local out="$cache/bin/$name-$version"
  if [[ -x $out/$bin ]]; then log "$name $version cached in $out"; return; fi
  mkdir -p "$out.tmp"; cd "$here/$dir"
  log "building $name $version"
  go build -ldflags "-s -w $ldflags" -o "$out.tmp/$bin" "$pkg"
  rm -rf "$out"; mv "$out.tmp" "$out"; log "$name done: $out"
}

# kwok v0.8.0 ships no default stages: copy the stock ones out of the module zip beside the binary.
build_kwok() {
  build_simple kwok "$KWOK_VERSION" kwok sigs.k8s.io/kwok/cmd/kwok kwok \
    "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
}

# Helm's default Kubernetes version (helm template, lint) comes from its client-go version, as
# in Helm's own Makefile; without it charts with a kubeVersion constraint see v1.20.0.
build_helm() {
  local cg; cg=$(awk '$1 == "k8s.io/client-go" {print $2}' "$here/helm/go.mod")
  local minor; minor=$(echo "$cg" | cut -d. -f2)
  local v="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for p in lint/rules chartutil; do
    v="$v -X helm.sh/helm/v3/pkg/$p.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/$p.k8sVersionMinor=$minor"
  done
  build_simple helm "$HELM_VERSION" helm helm.sh/helm/v3/cmd/helm helm "$v"
}

# prometheus-adapter: the baseline of bench/bench_metrics_api.py only, so not in the default set.
build_prometheus_adapter() {
  build_simple prometheus-adapter "$PROMETHEUS_ADAPTER_VERSION" prometheus-adapter \
    sigs.k8s.io/prometheus-adapter/cmd/adapter adapter
}

targets=("$@"); [[ ${#targets[@]} -gt 0 ]] || targets=(etcd kwok k8s inference-sim helm kustomize)
for t in "${targets[@]}"; do
  case $t in
    k8s) build_k8s ;;
    etcd) build_simple etcd "$ETCD_VERSION" etcd go.etcd.io/etcd/server/v3 etcd ;;
    kwok) build_kwok ;;
    inference-sim) build_simple inference-sim "$INFERENCE_SIM_VERSION" inference-sim \
        github.com/llm-d/llm-d-inference-sim/cmd/llm-d-inference-sim llm-d-inference-sim ;;
    helm) build_helm ;;
    kustomize) build_simple kustomize "$KUSTOMIZE_VERSION" kustomize sigs.k8s.io/kustomize/kustomize/v5 kustomize \
        "-X sigs.k8s.io/kustomize/api/provenance.version=kustomize/$KUSTOMIZE_VERSION" ;;
    prometheus-adapter) build_prometheus_adapter ;;
    *) echo "error: unknown component '$t' (k8s, etcd, kwok, inference-sim, helm, kustomize, prometheus-adapter)" >&2; exit 2 ;;
  esac
done
