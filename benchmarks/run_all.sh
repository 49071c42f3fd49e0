#!/usr/bin/env bash
# Regenerate every section of BENCHMARKS.md on this machine (about 25 minutes on 2 cores).
# The GPU section is regenerated where torch sees a CUDA GPU; elsewhere it is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 benchmarks/fcn_vs_sliding.py
python3 benchmarks/pipeline.py
python3 benchmarks/merge_scaling.py
python3 benchmarks/ablation.py
python3 benchmarks/int8.py
python3 benchmarks/soak.py
python3 benchmarks/memory.py
python3 benchmarks/multistream.py
if python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    python3 benchmarks/gpu_pyramid.py
else
    echo "run_all: torch sees no CUDA GPU here; the GPU section of BENCHMARKS.md is left as it is" >&2
fi
