#!/usr/bin/env bash
# Every measurement behind docs/benchmarks.md, in one run on one machine, then the report.
# Usage, from the project root with the environment active (. .venv/bin/activate):
#   tools/run_benchmarks.sh [DATA]      DATA: the shared data folder (default ../shared/data)
# Takes about half an hour. Run it on an otherwise idle machine: the figures are medians, but
# other work on the same cores still slows every system.
set -euo pipefail
data=${1:-../shared/data}
clip=$data/video/short_hamilton_clip.mp4
out=docs/bench
watchlist=$(mktemp -d)
triton=$(mktemp -d)
triton_pid=
# the Triton server's whole process group (its Python-backend stubs too), also when a step fails
cleanup() {
    if [ -n "$triton_pid" ]; then kill -- -"$triton_pid" 2>/dev/null || true; fi
    rm -rf "$watchlist" "$triton"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$out"

echo "== enrolling the people of $data/faces"
for person in "$data"/faces/*/; do
    streamrec enroll --data-dir "$watchlist" --name "$(basename "$person")" "$person"* >/dev/null || true
done

echo "== pipeline, live: the clip played at its own 29.97 fps like a camera: 1 stream, 4, 1 without embedding skips"
streamrec bench pipeline --source "$clip" --streams 1 --duration 30 --data-dir "$watchlist" --out "$out/pipeline_1.json"
streamrec bench pipeline --source "$clip" --streams 4 --duration 30 --data-dir "$watchlist" --out "$out/pipeline_4.json"
streamrec bench pipeline --source "$clip" --streams 1 --duration 30 --data-dir "$watchlist" --no-skips --out "$out/pipeline_1_noskips.json"

echo "== pipeline, live: 4 streams on 1 inference worker, then on 2 (cameras per worker)"
streamrec bench pipeline --source "$clip" --streams 4 --workers 1 --duration 30 --data-dir "$watchlist" --out "$out/pipeline_workers_4x1.json"
streamrec bench pipeline --source "$clip" --streams 4 --workers 2 --duration 30 --data-dir "$watchlist" --out "$out/pipeline_workers_4x2.json"

echo "== pipeline, offline: every frame as fast as it goes, faces from 20 px (as the peers are run), with and without skips"
streamrec bench pipeline --source "$clip" --fast --config configs/wide.toml --duration 20 --data-dir "$watchlist" --out "$out/pipeline_fast.json"
streamrec bench pipeline --source "$clip" --fast --config configs/wide.toml --duration 20 --data-dir "$watchlist" --no-skips --out "$out/pipeline_fast_noskips.json"

echo "== frame transport"
streamrec bench transport --out "$out/transport.json"
streamrec bench transport --size 1280x720 --out "$out/transport_1280x720.json"

echo "== peers, same frames and threads"
streamrec bench peers --source "$clip" --faces "$data/faces" --threads 2 \
    --backend onnxruntime,openvino --precision fp32,bf16,int8 --detection-precision fp32,bf16 \
    --expected lin_manuel_miranda,barack_obama,alex_lacamoire \
    --pairs "$data/lfw_view1/pairsDevTest.txt" --images "$data/lfw_view1/deepfunneled" \
    --pipeline-result "$out/pipeline_fast.json" --out "$out/peers.json"

echo "== the nets in process and through Triton: nvidia-pytriton's tritonserver (.venv-triton, made by make test), same machine"
if python -m streamrec.bench.tritonserver --check 2>/dev/null; then
    streamrec engines export --triton "$triton/repository" --platform python --threads 1 >/dev/null
    server=$(python -m streamrec.bench.tritonserver "$triton/repository" "$triton/tritonserver.log")  # "PID HOST:PORT", once ready
    read -r triton_pid url <<<"$server"
    streamrec bench models --backend onnxruntime,triton --precision fp32 --threads 1 --triton-url "$url" --out "$out/models_triton.json"
    kill -- -"$triton_pid"
    triton_pid=
else
    echo "Triton beside in-process inference: not measured, no tritonserver in .venv-triton (make test makes it)"
fi

echo "== report"
streamrec bench report --dir "$out" --out docs/benchmarks.md
