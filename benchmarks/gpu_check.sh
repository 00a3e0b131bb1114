#!/usr/bin/env bash
# One pass on a GPU machine with no network: the gpu-marked trainer tests, a torch.profiler look
# at Bespoke's steady-state steps, then the steady-state trainer benchmark against HF Trainer
# (flattening, padded) and TRL SFTTrainer (padding-free).
#
# The machine needs torch, transformers, peft and accelerate. Everything else (pydantic, pandas,
# pytest and its plugins, trl, datasets, ...) comes as wheels from `bash hack/gpu_wheels.sh`,
# run beforehand where PyPI is reachable; the ones this machine lacks are installed into a
# target directory (nothing else on the machine changes). Models are random-initialised from
# their configs, so nothing is downloaded. Figures land on stdout and in $OUT (or
# ./gpu-check-out): summary.txt, gpu-tests.log, trainer-throughput.jsonl, profile-<shape>.txt.
#
#   bash benchmarks/gpu_check.sh                      # Llama-1B, 3 repeats: about 7 minutes
#   SHAPES="qwen2-0.5b llama-1b" VARIANTS=compile bash benchmarks/gpu_check.sh   # longer
#   SHAPES=tiny STEPS=12 WARMUP=2 bash benchmarks/gpu_check.sh     # plumbing check, CPU too
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
OUT_DIR=${OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python3}
REPEATS=${REPEATS:-3}
PADDED_REPEATS=${PADDED_REPEATS:-1}  # the padded run is a reference column only
SHAPES=${SHAPES:-llama-1b}
VARIANTS=${VARIANTS:-}               # "compile" and/or "checkpointing": extra Bespoke sides
VARIANT_REPEATS=${VARIANT_REPEATS:-1}  # each variant runs after the interleaved repeats
STEPS=${STEPS:-100}
WARMUP=${WARMUP:-10}
WHEELS=${WHEELS:-$ROOT/.gpu-wheels}
SITE=${SITE:-${TMPDIR:-/tmp}/bespoke-gpu-site}
TEST_TIMEOUT=${TEST_TIMEOUT:-120}    # seconds; the whole pass stays under 8 minutes
BENCH_TIMEOUT=${BENCH_TIMEOUT:-330}
SUMMARY=$OUT_DIR/summary.txt

# 1. The missing dependencies, from carried wheels, into $SITE.
if [ -d "$WHEELS" ]; then
  missing=$($PY - "$WHEELS" <<'PYEOF'
import importlib.metadata as md
import pathlib
import sys

names = set()
for wheel in pathlib.Path(sys.argv[1]).glob("*.whl"):
    name = wheel.name.split("-")[0]
    try:
        md.distribution(name)
    except md.PackageNotFoundError:
        names.add(name)
print(" ".join(sorted(names)))
PYEOF
)
  if [ -n "$missing" ]; then
    echo "installing from $WHEELS into $SITE: $missing"
    # shellcheck disable=SC2086  # one argument per distribution name
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --find-links "$WHEELS" --target "$SITE" $missing || exit 1
  fi
fi
export PYTHONPATH=$ROOT/operator:$ROOT/trainer:$ROOT/serving:$ROOT/monitor:$SITE${PYTHONPATH:+:$PYTHONPATH}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader \
    2>/dev/null || echo "no nvidia-smi"
  $PY - <<'PYEOF'
import importlib.metadata as md
import sys

import torch

print("python", sys.version.split()[0], "| torch", torch.__version__, "cuda", torch.version.cuda)
for name in ("transformers", "peft", "accelerate", "trl", "datasets", "pydantic", "pytest",
             "flash_attn", "liger_kernel"):
    try:
        print(f"{name} {md.version(name)}", end=" | ")
    except md.PackageNotFoundError:
        print(f"{name} -", end=" | ")
print()
PYEOF
} 2>&1 | tee "$SUMMARY"

# 2. The gpu-marked trainer tests. The project's pytest config names plugins (pytest-asyncio,
# pytest-timeout) and is strict about unknown options: without them, run with no config.
echo "== gpu-marked trainer tests" | tee -a "$SUMMARY"
if $PY -m pytest --collect-only -q -p no:cacheprovider -m gpu tests/trainer >/dev/null 2>&1; then
  config=()
else
  echo "the project's pytest config does not load here (a plugin missing?): running without it" \
    | tee -a "$SUMMARY"
  config=(-c /dev/null --rootdir "$ROOT" -o "markers=gpu")
fi
# -p no:cacheprovider: the checkout may be read-only.
timeout "$TEST_TIMEOUT" $PY -m pytest "${config[@]}" tests/trainer -m gpu -p no:cacheprovider \
  -q -rs 2>&1 | tee "$OUT_DIR/gpu-tests.log" | tail -15
tests_rc=${PIPESTATUS[0]}
echo "gpu tests exit code: $tests_rc" | tee -a "$SUMMARY"
tail -1 "$OUT_DIR/gpu-tests.log" >>"$SUMMARY"

# 3. Profile, then the steady-state benchmark (JSON lines, streamed: a timeout keeps what ran).
echo "== trainer throughput ($SHAPES, $REPEATS repeats, $WARMUP + $STEPS steps, variants: ${VARIANTS:-none})" \
  | tee -a "$SUMMARY"
# shellcheck disable=SC2086  # word splitting of the lists is intended
timeout "$BENCH_TIMEOUT" $PY benchmarks/trainer_throughput.py --task causal-lm --shape $SHAPES \
  --repeats "$REPEATS" --padded-repeats "$PADDED_REPEATS" --steps "$STEPS" \
  --warmup-steps "$WARMUP" --variants $VARIANTS --variant-repeats "$VARIANT_REPEATS" \
  --profile "$OUT_DIR" \
  2>"$OUT_DIR/trainer-throughput.stderr" | tee "$OUT_DIR/trainer-throughput.jsonl" | cut -c1-240
bench_rc=${PIPESTATUS[0]}
echo "benchmark exit code: $bench_rc" | tee -a "$SUMMARY"
tail -5 "$OUT_DIR/trainer-throughput.stderr"
for f in "$OUT_DIR"/profile-*.txt; do [ -f "$f" ] && head -3 "$f" | tee -a "$SUMMARY"; done

# 4. The figures the issue asks for: one line per run and per side's median.
$PY - "$OUT_DIR/trainer-throughput.jsonl" <<'PYEOF' | tee -a "$SUMMARY"
import json
import sys

def fmt(x, spec):
    return "-" if x is None else format(x, spec)

for line in open(sys.argv[1]):
    r = json.loads(line)
    if "real_tokens_per_s" in r:
        mfu = r.get("lora_mfu")
        print(f"{r['task']:22} {r['side']:22} {'median' if r.get('median') else 'run ' + str(r.get('repeat'))}"
              f" {r['real_tokens_per_s']:9.0f} tok/s  step {r['step_ms']:7.1f} ms"
              f"  peak {fmt((r.get('peak_memory_mib') or 0) / 1024, '6.2f')} GiB"
              f"  MFU {fmt(None if mfu is None else 100 * mfu, '.1f')}%"
              f"  loss {fmt(r.get('final_loss'), '.4f')}  setup {r['setup_s']:.1f} s")
    elif "error" in r or "skipped" in r:
        print(f"{r.get('side')}: {r.get('error') or 'skipped: ' + r['skipped']}")
    elif "benchmark" in r and "all" not in r:
        print(json.dumps({k: r.get(k) for k in ("benchmark", "baseline", "ratio", "ratios", "vs",
              "lora_mfu", "memory_ratio", "memory_vs", "loss_gap_fraction", "variants")}))
PYEOF
exit $(( tests_rc != 0 || bench_rc != 0 ))
