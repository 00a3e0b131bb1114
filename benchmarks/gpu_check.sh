#!/usr/bin/env bash
# One pass on a GPU machine with no network: the gpu-marked tests, then the full trainer benchmark.
#
# Needs only torch, transformers, peft and accelerate (plus pytest and pandas for the tests);
# models are random-initialised from their configs, so nothing is downloaded. Figures land on
# stdout and in $OUT (or ./gpu-check-out): gpu-tests.log, trainer-throughput.jsonl, summary.txt.
#
#   bash benchmarks/gpu_check.sh                 # tests + Qwen2-0.5B and Llama-1B, 3 repeats
#   REPEATS=1 SHAPES=llama-1b bash benchmarks/gpu_check.sh   # the shortest useful pass
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
OUT_DIR=${OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python}
REPEATS=${REPEATS:-3}
SHAPES=${SHAPES:-qwen2-0.5b llama-1b}
VARIANTS=${VARIANTS:-checkpointing}  # add "compile" to measure torch.compile (minutes of compiling)
export PYTHONPATH=$ROOT/operator:$ROOT/trainer:$ROOT/serving:$ROOT/monitor${PYTHONPATH:+:$PYTHONPATH}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  $PY -c 'import torch, transformers, peft; print("torch", torch.__version__, "cuda", torch.version.cuda, "| transformers", transformers.__version__, "| peft", peft.__version__)'
  $PY -c 'import importlib.util as u; print("flash_attn", bool(u.find_spec("flash_attn")), "| liger_kernel", bool(u.find_spec("liger_kernel")))'
} | tee "$OUT_DIR/summary.txt"

echo "== gpu-marked tests" | tee -a "$OUT_DIR/summary.txt"
# -p no:cacheprovider: the checkout may be read-only; the trainer's gpu tests are the ones that
# exercise these paths (other folders' gpu tests need packages this machine may not have).
$PY -m pytest tests/trainer -m gpu -p no:cacheprovider -q -rs 2>&1 | tee "$OUT_DIR/gpu-tests.log" | tail -15
tests_rc=${PIPESTATUS[0]}
echo "gpu tests exit code: $tests_rc" | tee -a "$OUT_DIR/summary.txt"

echo "== trainer throughput (causal-LM, $SHAPES, $REPEATS repeats, variants: $VARIANTS)" \
  | tee -a "$OUT_DIR/summary.txt"
# shellcheck disable=SC2086  # word splitting of the lists is intended
$PY benchmarks/trainer_throughput.py --task causal-lm --shape $SHAPES --repeats "$REPEATS" \
  --variants $VARIANTS 2>"$OUT_DIR/trainer-throughput.stderr" | tee "$OUT_DIR/trainer-throughput.jsonl"
bench_rc=${PIPESTATUS[0]}
echo "benchmark exit code: $bench_rc" | tee -a "$OUT_DIR/summary.txt"
tail -5 "$OUT_DIR/trainer-throughput.stderr"

# The figures the issue asks for, one line per side and shape (medians over the repeats).
$PY - "$OUT_DIR/trainer-throughput.jsonl" <<'EOF' | tee -a "$OUT_DIR/summary.txt"
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("median"):
        mfu = r.get("lora_mfu")
        print(f"{r['task']:24} {r['side']:28} {r['real_tokens_per_s']:10.0f} tok/s "
              f"{r['samples_per_s']:8.2f} samples/s  peak {r['peak_memory_mib'] / 1024:6.2f} GiB  "
              f"MFU {'-' if mfu is None else f'{100 * mfu:.1f}%'}  loss {r['final_loss']:.4f}  "
              f"grad norm {r['grad_norm']:.3g}")
    elif "benchmark" in r and "all" not in r:
        print(f"{r['benchmark']}: ratio {r['ratio']:.2f} (runs {[round(x, 2) for x in r['ratios']]}),"
              f" memory ratio {r['memory_ratio']:.2f}, loss gap {100 * r['loss_gap_fraction']:.2f}%,"
              f" variants {json.dumps({k: round(v, 2) for k, v in r['variants'].items()})}")
EOF
exit $(( tests_rc != 0 || bench_rc != 0 ))
