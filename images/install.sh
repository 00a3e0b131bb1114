#!/usr/bin/env bash
# Installs one Bespoke component into a fresh virtualenv and checks that it imports. The image
# builds run exactly this script, and CI runs it in a clean virtualenv, so a broken install step
# fails CI even where no container engine runs.
#
# usage: images/install.sh COMPONENT VENV [SOURCE]
#   COMPONENT  operator | trainer | serving
#   VENV       virtualenv to create (must not exist yet)
#   SOURCE     the project source tree (default: the repository this script is in)
# env:
#   PYTHON           interpreter that creates the venv (default python3)
#   TORCH_INDEX_URL  install torch from this index first (serving: the CPU wheels)
#   BESPOKE_INSTALL_USE_CACHE  set to 1 to use pip's cache (CI); image builds leave no cache behind
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }

component="${1:?usage: install.sh COMPONENT VENV [SOURCE]}"
venv="${2:?usage: install.sh COMPONENT VENV [SOURCE]}"
source_dir="${3:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
python="${PYTHON:-python3}"

case "$component" in
  operator) extras="operator"; imports="kopf kubernetes_asyncio prometheus_client bespoke_operator" ;;
  trainer) extras="trainer,s3"; imports="torch transformers peft accelerate s3fs bespoke_trainer" ;;
  # serving reads every location kind a version names (pvc/file paths, s3:// through s3fs)
  serving) extras="serving,monitor,s3"; imports="torch bentoml evidently s3fs bespoke_serving bespoke_monitor" ;;
  *) log "Unknown component '$component': use operator, trainer or serving"; exit 2 ;;
esac

if [[ -e "$venv" ]]; then
  log "Refusing to install into existing path $venv: the install must start clean"
  exit 2
fi

log "Creating virtualenv $venv with $("$python" --version)"
"$python" -m venv "$venv"
cache=(--no-cache-dir)
[[ "${BESPOKE_INSTALL_USE_CACHE:-}" == 1 ]] && cache=()
pip=("$venv/bin/python" -m pip "${cache[@]}" --disable-pip-version-check --no-input)

if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
  log "Installing torch from $TORCH_INDEX_URL"
  "${pip[@]}" install --index-url "$TORCH_INDEX_URL" torch
fi

log "Installing bespoke[$extras] from $source_dir"
"${pip[@]}" install "${source_dir}[${extras}]"
"${pip[@]}" check

log "Checking imports: $imports"
for module in $imports; do
  "$venv/bin/python" -c "import importlib, sys; importlib.import_module(sys.argv[1])" "$module"
done
log "Installed $component into $venv"
