#!/usr/bin/env bash
# Wheels for benchmarks/gpu_check.sh on a GPU machine that has no network.
#
# Such a machine typically holds torch, transformers, peft and accelerate (and their own needs)
# and nothing of this project. Run this beforehand where PyPI is reachable; it downloads, with no
# dependency resolution, every other distribution that the trainer, its gpu-marked tests and the
# benchmark's TRL peer import, for the target's Python versions, into an ignored folder.
# gpu_check.sh then installs (with `pip install --no-index --no-deps --target`) only those the
# machine lacks. Versions follow constraints.txt where it pins them.
#
#   bash hack/gpu_wheels.sh                       # -> .gpu-wheels/, for CPython 3.12
#   PYVERS="3.11 3.12" bash hack/gpu_wheels.sh    # binary wheels for several versions
#   WHEEL_GROUPS="trainer tests" bash hack/gpu_wheels.sh   # no TRL peer (smaller)
#   EXCLUDE="pyarrow pandas" bash hack/gpu_wheels.sh # leave out what the target surely has
set -euo pipefail

cd "$(dirname "$0")/.."
DEST=${DEST:-.gpu-wheels}
PYVERS=${PYVERS:-3.12}
WHEEL_GROUPS=${WHEEL_GROUPS:-trainer tests trl}
EXCLUDE=" ${EXCLUDE:-} "
PIP=${PIP:-python3 -m pip}

pin() {  # NAME -> NAME==VERSION from constraints.txt, else the given fallback version
  local v
  v=$(grep -i "^$1==" constraints.txt | head -1 | cut -d= -f3 || true)
  echo "$1==${v:-$2}"
}

declare -a want=()
for group in $WHEEL_GROUPS; do
  case $group in
    trainer)  # bespoke_trainer's imports beyond torch/transformers/peft/accelerate
      want+=("$(pin pydantic 2.14.4)" "pydantic-core==2.50.5" "$(pin annotated-types 0.8.0)"
             "$(pin typing-inspection 0.4.5)" "$(pin typing-extensions 4.16.0)"
             "$(pin pandas 2.3.3)" "$(pin python-dateutil 2.9.0.post0)" "$(pin six 1.17.0)"
             "$(pin pytz 2026.6)" "$(pin tzdata 2026.6)" "$(pin fsspec 2026.2.0)") ;;
    tests)    # pytest and the plugins the project's pytest config names
      want+=("$(pin pytest 9.2.0)" "$(pin pluggy 1.7.0)" "$(pin iniconfig 2.3.1)"
             "$(pin Pygments 2.21.0)" "$(pin pytest-asyncio 1.5.0)" "$(pin pytest-timeout 2.4.0)") ;;
    trl)      # the benchmark's TRL SFTTrainer peer (datasets needs pyarrow >= 21)
      want+=("trl==1.16.0" "datasets==4.7.0" "dill==0.4.0" "multiprocess==0.70.18"
             "xxhash==3.6.0" "$(pin pyarrow 26.0.1)" "$(pin requests 2.32.5)"
             "$(pin urllib3 2.5.0)" "$(pin charset-normalizer 3.4.4)") ;;
    *) echo "unknown group $group (trainer, tests, trl)" >&2; exit 2 ;;
  esac
done

mkdir -p "$DEST"
for spec in "${want[@]}"; do
  name=${spec%%==*}
  [[ $EXCLUDE == *" $name "* ]] && continue
  for py in $PYVERS; do
    $PIP download -q --no-deps --only-binary=:all: -d "$DEST" --implementation cp \
      --python-version "$py" --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 "$spec"
  done
done
du -sh "$DEST"
ls "$DEST"
