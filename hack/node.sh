#!/usr/bin/env bash
# Provide what the node test tier (tests/node/) runs on top of hack/envtest.sh's control plane:
# kubelet, kube-scheduler and kube-proxy (the same Kubernetes Go modules as hack/envtest), CoreDNS
# (from the Go module proxy), a static pause image and a Debian bookworm + Python base image.
#
# Everything is cached under ${XDG_CACHE_HOME:-~/.cache}/bespoke/node/ and checked, not rebuilt,
# on the next run. Missing Debian packages (containerd, runc, CNI plugins, buildah, ...) are
# installed with apt-get when running as root; otherwise the script says what to install.
# Prints the cache directory on its last line.
#
# Environment:
#   BESPOKE_ENVTEST_JOBS  parallel compile jobs for go build (default: number of CPUs)
#   BESPOKE_NODE_LOG      also append progress to this file
#   BESPOKE_NODE_NO_APT   set to 1 to never call apt-get (fail with the list instead)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# One home for the Kubernetes version, the Go module set and go_build: hack/envtest.sh.
# shellcheck source=hack/envtest.sh
source "${HERE}/envtest.sh"
COREDNS_VERSION="1.15.0"
DEBIAN_SUITE="bookworm"
NODE_CACHE="${XDG_CACHE_HOME:-${HOME}/.cache}/bespoke/node"
BIN_DIR="${NODE_CACHE}/${K8S_VERSION}"
IMAGE_DIR="${NODE_CACHE}/images"
# The image names the tier uses; tests/node/harness.py reads the same names from here.
PAUSE_IMAGE="localhost/bespoke-node/pause:3.10"
BASE_IMAGE="localhost/bespoke-node/python:3.11-${DEBIAN_SUITE}"
# buildah keeps its own store in the cache (never /var/lib/containers), with the settings this
# machine kind needs (containers.conf beside this script: runc, no raised rlimits).
BUILDAH=(buildah --root "${NODE_CACHE}/storage" --runroot /run/bespoke-node/storage)
export CONTAINERS_CONF="${HERE}/node/containers.conf"
APT_PACKAGES=(containerd runc containernetworking-plugins mmdebstrap conntrack iptables buildah podman)
START_TS="$(date +%s)"

log() {
  local line
  line="node [$(($(date +%s) - START_TS))s] $*"
  echo "${line}" >&2
  if [[ -n "${BESPOKE_NODE_LOG:-}" ]]; then echo "$(date -u +%FT%TZ) ${line}" >>"${BESPOKE_NODE_LOG}"; fi
}

die() {
  log "ERROR: $*"
  exit 1
}

missing_packages() {
  local pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q "install ok installed" || echo "${pkg}"
  done
}

ensure_packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  ((${#missing[@]} == 0)) && return 0
  if [[ "${BESPOKE_NODE_NO_APT:-0}" == 1 || "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
    die "missing packages: ${missing[*]} (as root: apt-get install ${missing[*]})"
  fi
  log "apt-get install ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
}

node_usable() {
  local output
  [[ -x "$1" ]] || return 1
  output="$("$1" --version 2>&1)" || return 1
  case "$(basename "$1")" in
    coredns) [[ "${output}" == *"CoreDNS-${COREDNS_VERSION}"* ]] ;;
    *) [[ "${output}" == *"v${K8S_VERSION}"* ]] ;;
  esac
}

build_kube() {
  local name
  for name in kube-scheduler kube-proxy kubelet; do
    if node_usable "${BIN_DIR}/${name}"; then continue; fi
    # go_build (hack/envtest.sh) writes into CACHE_DIR: point it at the node cache.
    CACHE_DIR="${BIN_DIR}" go_build "${name}" "k8s.io/kubernetes/cmd/${name}"
  done
}

build_coredns() {
  node_usable "${BIN_DIR}/coredns" && return 0
  log "Building CoreDNS ${COREDNS_VERSION} from the Go module proxy"
  local t0 gobin
  t0="$(date +%s)"
  gobin="$(mktemp -d)"
  CGO_ENABLED=0 GOBIN="${gobin}" GOFLAGS="-buildvcs=false" nice -n 10 go install -trimpath \
    -p "${BESPOKE_ENVTEST_JOBS:-$(nproc)}" -ldflags "-s -w" \
    "github.com/coredns/coredns@v${COREDNS_VERSION}" || die "Building CoreDNS failed"
  mv -f "${gobin}/coredns" "${BIN_DIR}/coredns"
  rm -rf "${gobin}"
  log "Built coredns in $(($(date +%s) - t0))s"
}

image_built() {
  [[ -s "${IMAGE_DIR}/$1.tar" ]] && "${BUILDAH[@]}" inspect --type image "$2" >/dev/null 2>&1
}

# Save an image from the buildah store as a docker-archive that `ctr images import` reads.
save_image() {
  local file="$1" ref="$2"
  rm -f "${IMAGE_DIR}/${file}.tar.tmp"
  "${BUILDAH[@]}" push --quiet "${ref}" "docker-archive:${IMAGE_DIR}/${file}.tar.tmp:${ref}" >/dev/null
  mv -f "${IMAGE_DIR}/${file}.tar.tmp" "${IMAGE_DIR}/${file}.tar"
}

build_pause() {
  image_built pause "${PAUSE_IMAGE}" && return 0
  log "Building the pause image ${PAUSE_IMAGE}"
  local work ctr
  work="$(mktemp -d)"
  (cd "${HERE}/node/pause" && CGO_ENABLED=0 GOFLAGS="-mod=mod" nice -n 10 go build -trimpath \
    -ldflags "-s -w" -o "${work}/pause" .) || die "Building pause failed"
  ctr="$("${BUILDAH[@]}" from scratch)"
  "${BUILDAH[@]}" copy --quiet "${ctr}" "${work}/pause" /pause
  "${BUILDAH[@]}" config --entrypoint '["/pause"]' --user 65535:65535 "${ctr}"
  "${BUILDAH[@]}" commit --quiet --rm "${ctr}" "${PAUSE_IMAGE}" >/dev/null
  save_image pause "${PAUSE_IMAGE}"
  rm -rf "${work}"
}

# Debian's own python3 (3.11 in bookworm) from Debian's mirrors; no other registry is reachable.
# The host's CA bundle goes in (a TLS-intercepting proxy's CA included) and pip is told to use it.
build_base() {
  image_built base "${BASE_IMAGE}" && return 0
  log "Building the base image ${BASE_IMAGE} with mmdebstrap (${DEBIAN_SUITE})"
  local work ctr
  work="$(mktemp -d)"
  nice -n 10 mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
    --customize-hook="upload /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt" \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "${DEBIAN_SUITE}" "${work}/rootfs.tar" || die "mmdebstrap failed"
  ctr="$("${BUILDAH[@]}" from scratch)"
  "${BUILDAH[@]}" add --quiet "${ctr}" "${work}/rootfs.tar" /
  "${BUILDAH[@]}" config --cmd '["python3"]' \
    --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt "${ctr}"
  "${BUILDAH[@]}" commit --quiet --rm "${ctr}" "${BASE_IMAGE}" >/dev/null
  save_image base "${BASE_IMAGE}"
  rm -rf "${work}"
}

# usage: node.sh [all|images|binaries]  (the parts can run at the same time, in two shells)
main() {
  local what="${1:-all}"
  mkdir -p "${BIN_DIR}" "${IMAGE_DIR}"
  log "Kubernetes ${K8S_VERSION}, CoreDNS ${COREDNS_VERSION}, cache ${NODE_CACHE}"
  ensure_packages
  if [[ "${what}" == all || "${what}" == images ]]; then
    build_pause
    build_base
  fi
  [[ "${what}" == images ]] && { log "Images done in $(($(date +%s) - START_TS))s"; return 0; }
  build_kube
  build_coredns
  local name
  for name in kubelet kube-scheduler kube-proxy coredns; do
    node_usable "${BIN_DIR}/${name}" || die "${BIN_DIR}/${name} is not usable"
  done
  log "Done in $(($(date +%s) - START_TS))s"
  echo "${NODE_CACHE}"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
