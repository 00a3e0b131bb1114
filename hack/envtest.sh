#!/usr/bin/env bash
# Provide kube-apiserver, kube-controller-manager and etcd for the cluster test suite.
#
# For one pinned Kubernetes version, each binary comes from the first of:
#   1. the cache: ${XDG_CACHE_HOME:-~/.cache}/bespoke/envtest/<version>/
#   2. the official envtest release (kube-apiserver, etcd, kubectl; needs that network)
#   3. a build from the Kubernetes Go modules through the Go module proxy (hack/envtest/go.mod)
# kubectl is optional: without a cached one the tests use the kubectl on PATH, so it is built
# only when there is none there (or BESPOKE_ENVTEST_KUBECTL=1 asks for a version-matched one).
# Idempotent: a second run only checks the cache. Prints the cache directory on its last line.
#
# Environment:
#   BESPOKE_ENVTEST_K8S_VERSION  pinned version (default below; hack/envtest/go.mod must match)
#   BESPOKE_ENVTEST_NO_DOWNLOAD  set to 1 to skip the download attempt
#   BESPOKE_ENVTEST_KUBECTL      set to 1 to also build kubectl when one is on PATH
#   BESPOKE_ENVTEST_JOBS         parallel compile jobs for go build (default: number of CPUs)
#   BESPOKE_ENVTEST_LOG          also append progress to this file
set -euo pipefail

K8S_VERSION="${BESPOKE_ENVTEST_K8S_VERSION:-1.34.4}"
ETCD_VERSION="3.6.4"  # the version k8s.io/kubernetes v${K8S_VERSION} requires (its go.mod)
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODULE_DIR="${HERE}/envtest"
CACHE_DIR="${XDG_CACHE_HOME:-${HOME}/.cache}/bespoke/envtest/${K8S_VERSION}"
ENVTEST_URL="https://github.com/kubernetes-sigs/controller-tools/releases/download/envtest-v${K8S_VERSION}/envtest-v${K8S_VERSION}-linux-amd64.tar.gz"
START_TS="$(date +%s)"

log() {
  local line
  line="envtest [$(($(date +%s) - START_TS))s] $*"
  echo "${line}" >&2
  if [[ -n "${BESPOKE_ENVTEST_LOG:-}" ]]; then echo "$(date -u +%FT%TZ) ${line}" >>"${BESPOKE_ENVTEST_LOG}"; fi
}

die() {
  log "ERROR: $*"
  exit 1
}

# A cached binary counts only if it runs and reports the pinned version: a half-written file, or
# one left from another version or from a build without version stamps, is replaced.
usable() {
  local output
  [[ -x "$1" ]] || return 1
  case "$(basename "$1")" in
    kubectl) output="$("$1" version --client 2>&1)" || return 1 ;;
    *) output="$("$1" --version 2>&1)" || return 1 ;;
  esac
  case "$(basename "$1")" in
    etcd) [[ "${output}" == *"etcd Version: ${ETCD_VERSION}"* ]] ;;
    *) [[ "${output}" == *"v${K8S_VERSION}"* ]] ;;
  esac
}

want_kubectl() {
  [[ "${BESPOKE_ENVTEST_KUBECTL:-0}" == "1" ]] || ! command -v kubectl >/dev/null
}

all_usable() {
  usable "${CACHE_DIR}/kube-apiserver" && usable "${CACHE_DIR}/kube-controller-manager" \
    && usable "${CACHE_DIR}/etcd" && { ! want_kubectl || usable "${CACHE_DIR}/kubectl"; }
}

try_download() {
  if [[ "${BESPOKE_ENVTEST_NO_DOWNLOAD:-0}" == "1" ]]; then
    log "Download skipped (BESPOKE_ENVTEST_NO_DOWNLOAD=1)"
    return 1
  fi
  if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
    log "Download skipped: the release is fetched for linux/amd64 only"
    return 1
  fi
  log "Downloading the envtest release ${ENVTEST_URL}"
  local tmp
  tmp="$(mktemp -d)"
  if ! curl -fsSL --connect-timeout 10 --max-time 300 -o "${tmp}/envtest.tar.gz" "${ENVTEST_URL}" 2>"${tmp}/curl.err"; then
    log "Download failed ($(tr '\n' ' ' <"${tmp}/curl.err" | cut -c1-200)); falling back to a build"
    rm -rf "${tmp}"
    return 1
  fi
  tar -xzf "${tmp}/envtest.tar.gz" -C "${tmp}"
  local name
  for name in kube-apiserver etcd kubectl; do
    local found
    found="$(find "${tmp}" -type f -name "${name}" | head -n1)"
    [[ -n "${found}" ]] || { log "Download lacks ${name}"; rm -rf "${tmp}"; return 1; }
    install -m 0755 "${found}" "${CACHE_DIR}/${name}.tmp"
    mv -f "${CACHE_DIR}/${name}.tmp" "${CACHE_DIR}/${name}"
    log "Installed ${name} from the release"
  done
  rm -rf "${tmp}"
}

go_build() {
  local name="$1" pkg="$2"
  command -v go >/dev/null || die "Go is needed to build ${name} (https://go.dev/dl/, Go >= 1.24)"
  log "Building ${name} from ${pkg} (long on a small machine; nice -n 10)"
  local t0
  t0="$(date +%s)"
  # The version stamps that Kubernetes' own build (hack/lib/version.sh) sets: without them the
  # binaries report v0.0.0-master, which kubectl and the version checks misread.
  local ldflags="-s -w" pkgpath minor="${K8S_VERSION#*.}"
  minor="${minor%%.*}"
  for pkgpath in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${pkgpath}.gitVersion=v${K8S_VERSION} -X ${pkgpath}.gitMajor=1"
    ldflags+=" -X ${pkgpath}.gitMinor=${minor} -X ${pkgpath}.gitTreeState=clean"
    ldflags+=" -X ${pkgpath}.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done
  # -trimpath and no VCS stamping keep the build independent of the checkout.
  (
    cd "${MODULE_DIR}"
    CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" nice -n 10 go build -trimpath \
      -p "${BESPOKE_ENVTEST_JOBS:-$(nproc)}" -ldflags "${ldflags}" \
      -o "${CACHE_DIR}/${name}.tmp" "${pkg}"
  ) || die "Building ${name} failed"
  mv -f "${CACHE_DIR}/${name}.tmp" "${CACHE_DIR}/${name}"
  log "Built ${name} in $(($(date +%s) - t0))s"
}

main() {
  mkdir -p "${CACHE_DIR}"
  log "Kubernetes ${K8S_VERSION}, etcd ${ETCD_VERSION}, cache ${CACHE_DIR}"
  if all_usable; then
    log "Cached binaries are usable; nothing to do"
    echo "${CACHE_DIR}"
    return 0
  fi
  grep -q "k8s.io/kubernetes v${K8S_VERSION}\$" "${MODULE_DIR}/go.mod" \
    || die "hack/envtest/go.mod does not require k8s.io/kubernetes v${K8S_VERSION}"

  if ! usable "${CACHE_DIR}/kube-apiserver" || ! usable "${CACHE_DIR}/etcd"; then
    try_download || true
  fi
  # kube-controller-manager is not part of the envtest release, so it is always built.
  usable "${CACHE_DIR}/etcd" || go_build etcd go.etcd.io/etcd/server/v3
  usable "${CACHE_DIR}/kube-apiserver" || go_build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
  usable "${CACHE_DIR}/kube-controller-manager" \
    || go_build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
  if ! usable "${CACHE_DIR}/kubectl"; then
    if want_kubectl; then
      go_build kubectl k8s.io/kubernetes/cmd/kubectl
    else
      log "Using the kubectl on PATH ($(kubectl version --client 2>/dev/null | head -n1))"
    fi
  fi

  all_usable || die "Some binaries are still missing in ${CACHE_DIR}"
  local name
  for name in etcd kube-apiserver kube-controller-manager; do
    log "${name}: $("${CACHE_DIR}/${name}" --version 2>&1 | head -n1)"
  done
  if [[ -x "${CACHE_DIR}/kubectl" ]]; then
    log "kubectl: $("${CACHE_DIR}/kubectl" version --client 2>&1 | head -n1)"
  fi
  log "Done in $(($(date +%s) - START_TS))s"
  echo "${CACHE_DIR}"
}

# Sourcing the script (the tests do) defines the functions without running anything.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
