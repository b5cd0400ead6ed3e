#!/usr/bin/env bash
# Builds the local control plane (kube-apiserver, kube-controller-manager, kube-scheduler,
# kube-proxy, kubectl, etcd, CoreDNS, helm) from the Go module proxy into a cache outside the repository.
# Prints the bin directory. Rebuilds only when a pin (versions.env, a wrapper go.mod/go.sum
# or this script) changes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
source "$here/versions.env"

cache_root=${MLOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlops-operator}
bin_dir="$cache_root/bin/$K8S_VERSION"
stamp_file="$bin_dir/.stamp"
stamp=$(cat "$here/versions.env" "$here/build-binaries.sh" "$here"/*/go.mod "$here"/*/go.sum "$here"/*/*.go | sha256sum | cut -d' ' -f1)

binaries=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl etcd coredns helm)
all_present() { for b in "${binaries[@]}"; do [ -x "$bin_dir/$b" ] || return 1; done; }
if all_present && [ "$(cat "$stamp_file" 2>/dev/null)" = "$stamp" ]; then
  echo "$bin_dir"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build the control plane (https://go.dev/dl)" >&2; exit 1; }
mkdir -p "$bin_dir"
export CGO_ENABLED=0
log() { echo "[build-binaries] $*" >&2; }

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

log "building Kubernetes $K8S_VERSION into $bin_dir (first build takes 10-20 minutes)"
(cd "$here/k8s" && go build -trimpath -ldflags "$k8s_ldflags" -o "$bin_dir/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl)

log "building etcd $ETCD_VERSION"
(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$bin_dir/etcd" go.etcd.io/etcd/server/v3)

log "building CoreDNS $COREDNS_VERSION (the plugins hack/coredns/main.go names)"
(cd "$here/coredns" && go build -trimpath -ldflags "-s -w" -o "$bin_dir/coredns" .)

log "building helm $HELM_VERSION"
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
done
(cd "$here/helm" && go build -trimpath -ldflags "$helm_ldflags" -o "$bin_dir/helm" helm.sh/helm/v3/cmd/helm)

echo "$stamp" > "$stamp_file"
echo "$bin_dir"
