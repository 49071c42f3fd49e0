#!/usr/bin/env bash
# Regenerate every CPU section of BENCHMARKS.md on this machine (about 20 minutes on 2 cores).
# The GPU section needs a CUDA machine: python3 benchmarks/gpu_pyramid.py there.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 benchmarks/fcn_vs_sliding.py
python3 benchmarks/pipeline.py
python3 benchmarks/merge_scaling.py
python3 benchmarks/ablation.py
python3 benchmarks/int8.py
python3 benchmarks/soak.py
python3 benchmarks/memory.py
