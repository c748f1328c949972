#!/usr/bin/env bash
# Issue 22's offline step, end to end: a pinned Python environment, the crop pairs from lfw-train (Vigil's own
# detect and align), the fine-tuning, and the ONNX file with its sha256 and training record beside it.
#   bash scripts/train-embedder/run.sh [out-dir] [train.py options...]
# Data: $VIGIL_SHARED_DATA/lfw-train (identity-disjoint from every LFW verification fold). Nothing of it, nor
# the weights trained on it (LFW is research-use), goes into the repository: everything lands in out-dir
# (default .vigil/train-embedder).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
out="${1:-.vigil/train-embedder}"
shift || true
data="${VIGIL_SHARED_DATA:?set VIGIL_SHARED_DATA to the development data folder (with lfw-train)}/lfw-train/images"
[ -d "$data" ] || { echo "no $data: the training photos are not here" >&2; exit 1; }
venv="${VIGIL_TRAIN_VENV:-.vigil/train-embedder-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet -r scripts/train-embedder/requirements.txt
mkdir -p "$out"
if [ ! -f "$out/pairs/manifest.json" ]; then
  node bin/vigil.js train-data distill --images "$data" --out "$out/pairs" --variants 6 --seed 1
fi
# The shipped embedder as the setup script leaves it (the OpenVINO IR converted to ONNX in the model cache).
teacher="${VIGIL_TEACHER:-.vigil/models/reid-0095.onnx}"
[ -f "$teacher" ] || { echo "no $teacher: run bash scripts/setup.sh first (or set VIGIL_TEACHER)" >&2; exit 1; }
"$venv/bin/python" scripts/train-embedder/train.py --data "$out/pairs" --teacher "$teacher" \
  --out "$out/reid0095-xres.onnx" "$@"
sum="$(sha256sum "$out/reid0095-xres.onnx" | cut -d' ' -f1)"
cat >&2 <<NEXT

Declare it as a pack (README: Fine-tuning the embedder for distant faces), then calibrate and fit it:
  "models": { "pack": "xres", "packs": { "xres": {
    "licence": "research use only: reid-0095 (Apache-2.0) fine-tuned on LFW lfw-train (research use)",
    "embedder": { "path": "$(cd "$out" && pwd)/reid0095-xres.onnx", "sha256": "$sum",
      "input": { "width": 128, "height": 128, "channels": "bgr", "mean": [0, 0, 0], "std": [1, 1, 1] },
      "template": "omz", "outputDim": 256, "maxBatch": 64 } } } }
  npx vigil --config site.json eval lfw --calibrate --pack xres --images … --pairs …
  npx vigil --config site.json eval quality --images … --pairs … --save
  npx vigil --config site.json eval threshold     # the operating point as the built-in pack's is set
NEXT
