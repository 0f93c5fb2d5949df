#!/usr/bin/env bash
# The NVIDIA GPU's tests and measurements, in one run: the torch backend's CUDA tests (LFW View 1
# accuracy per precision included) and TensorRT's (they skip, saying why, where TensorRT and
# PyCUDA are not installed), then FaceNet and whole-frame MTCNN timed on the GPU, the per-frame
# row beside the peers, and the pipeline over 32 cameras of 1280x720 frames batched together.
# Usage, from the project root with the environment active (. .venv/bin/activate):
#   tools/run_gpu_checks.sh [OUT] [DATA] [DEVICE]
#     OUT: where the logs and JSON results go (default docs/bench/gpu)
#     DATA: the shared data folder (default ../shared/data); DEVICE: cuda:N (default cuda:0)
# Stops at once, saying why, where PyTorch sees no CUDA device. About ten minutes on an H200.
set -euo pipefail
out=${1:-docs/bench/gpu}
data=${2:-../shared/data}
device=${3:-cuda:0}
clip=$data/video/short_hamilton_clip.mp4
python - "$device" <<'EOF'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit(f"no CUDA device is visible to PyTorch {torch.__version__}: nothing to check here")
index = torch.device(sys.argv[1]).index or 0
print(f"{sys.argv[1]}: {torch.cuda.get_device_name(index)}, PyTorch {torch.__version__}, CUDA {torch.version.cuda}")
EOF
mkdir -p "$out"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

backends=torch
if python -c 'import tensorrt, pycuda.driver' 2>/dev/null; then
    backends=torch,tensorrt
fi

echo "== tests: torch on $device, TensorRT ($backends)"
# the CUDA tests and the CPU ones they compare with; || true: the results go on whatever failed
python -m pytest tests/backends/test_torch_cuda.py tests/backends/test_torch_device.py tests/backends/test_tensorrt.py \
    -q -rs --junitxml "$out/tests.xml" 2>&1 | tee "$out/tests.log" || true

echo "== FaceNet by batch, whole-frame MTCNN at 1280x720 and 1920x1080 ($backends, $device)"
streamrec bench models --device "$device" --backend "$backends" --precision fp32,fp16,bf16 \
    --batches 1,32,128,512 --min-face-sizes 40,20 --size 1280x720 --source "$clip" \
    --duration 3 --rounds 40 --out "$out/models_cuda_1280x720.json"
streamrec bench models --device "$device" --backend "$backends" --precision fp16 --batches 32 \
    --min-face-sizes 40,20 --size 1920x1080 --source "$data/scenes/cf_016_8.jpg" \
    --duration 2 --rounds 20 --out "$out/models_cuda_1920x1080.json"

echo "== per frame, every face embedded, beside the peers on the CPU"
streamrec bench peers --source "$clip" --faces "$data/faces" --backend torch --precision fp32,fp16 \
    --device "$device" --expected lin_manuel_miranda,barack_obama,alex_lacamoire --out "$out/peers_cuda.json"

echo "== pipeline: 32 cameras of 1280x720 frames, read as fast as it takes them, in batches of 32"
python - "$clip" "$scratch/clip_1280x720.mp4" <<'EOF'
import sys

import cv2

source = cv2.VideoCapture(sys.argv[1])
fps = source.get(cv2.CAP_PROP_FPS)
writer = cv2.VideoWriter(sys.argv[2], cv2.VideoWriter.fourcc(*"mp4v"), fps, (1280, 720))
while True:
    ok, frame = source.read()
    if not ok:
        break
    writer.write(cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_LINEAR))
writer.release()
EOF
cat >"$scratch/gpu.toml" <<EOF
[pipeline]
backend = "torch"
device = "$device"
precision = "fp16"

[batch]
max_frames = 32
EOF
streamrec bench pipeline --source "$scratch/clip_1280x720.mp4" --streams 32 --fast --config "$scratch/gpu.toml" \
    --duration 30 --out "$out/pipeline_cuda_32x1280x720.json"
