#!/usr/bin/env bash
# The GPU checks of issue 13 on a bare GPU host (no Node, no ffmpeg, nothing fetched), from the working tree
# plus the parts scripts/gpu-bundle.sh prepared (.gpu-bundle/p1, p2, ...: each carried by its own call).
#
#   scripts/device-check.sh receive   store the parts carried by this call (outside the tree, so later calls keep
#                                     them); once the provider libraries are complete, check on the GPU that the
#                                     driver loads their kernels
#   scripts/device-check.sh run       store, check every piece against MANIFEST, unpack, then measure:
#                                     vigil bench gpu (CUDA and CPU side by side, cameras at 5 fps end to end),
#                                     LFW accuracy on CUDA and on the CPU, and what TensorRT says
#
# Figures are printed and, when $OUT is set, written there (at most 8 files). Without a GPU (nvidia-smi absent)
# the same steps run on the CPU only, which is how this script is tested before it goes to a GPU host.
# Knobs: BENCH_ARGS (extra `vigil bench gpu` flags), LFW (0 skips it), VIGIL_GPU_STORE, VIGIL_GPU_WORK.
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-run}
STORE=${VIGIL_GPU_STORE:-/var/tmp/vigil-gpu/store}
WORK=${VIGIL_GPU_WORK:-/var/tmp/vigil-gpu/work}
OUTDIR=${OUT:-}
T0=$(date +%s)
mkdir -p "$STORE" "$WORK"
[ -n "$OUTDIR" ] && mkdir -p "$OUTDIR"
say() { printf '[device-check %4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
GPU=0
have nvidia-smi && nvidia-smi -L >/dev/null 2>&1 && GPU=1

# xz may be absent on the host; Python's lzma reads the same files.
unxz_stream() {
  if have xz; then xz -dc -T0 "$1"; else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer, 1 << 20)' "$1"; fi
}

store_parts() {
  local moved=0
  for f in .gpu-bundle/p*/*; do
    [ -f "$f" ] || continue
    mv -f "$f" "$STORE/" && moved=$((moved + 1))
  done
  say "stored $moved file(s); $STORE holds $(du -sh "$STORE" | cut -f1)"
}

# Joins a component's pieces and checks its sha256; prints its path, or fails naming what is missing.
assemble() {
  local name=$1 sha size pieces missing=""
  read -r _ _ sha size < <(grep "^component $name " "$STORE/MANIFEST")
  local out=$WORK/$name
  if [ -f "$out" ] && [ "$(stat -c %s "$out")" = "$size" ]; then echo "$out"; return 0; fi
  pieces=$(awk -v n="$name" '$1 == "piece" && $3 == n {print $2}' "$STORE/MANIFEST")
  for p in $pieces; do [ -f "$STORE/$p" ] || missing="$missing $p"; done
  if [ -n "$missing" ]; then echo "missing pieces of $name:$missing" >&2; return 1; fi
  (cd "$STORE" && cat $pieces) >"$out.tmp"
  if [ "$(sha256sum "$out.tmp" | cut -d' ' -f1)" != "$sha" ]; then echo "$name: sha256 differs from MANIFEST" >&2; rm -f "$out.tmp"; return 1; fi
  mv "$out.tmp" "$out"
  echo "$out"
}
component() { awk -v p="$1" '$1 == "component" && index($2, p) == 1 {print $2}' "$STORE/MANIFEST"; }

# The CUDA provider travels with other architectures' kernels zeroed (scripts/gpu-bundle.sh): before anything
# relies on it, every fatbin of it is handed to the driver (eager loading), which must accept those that hold
# this GPU's code and refuse those that hold none.
check_fatbins() {
  local lib=$1
  python3 - "$lib" <<'PY'
import ctypes, os, struct, sys
os.environ["CUDA_MODULE_LOADING"] = "EAGER"
b = open(sys.argv[1], "rb").read()
shoff = struct.unpack_from("<Q", b, 0x28)[0]
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", b, 0x3A)
sh = lambda i: struct.unpack_from("<IIQQQQIIQQ", b, shoff + i * shentsize)
strtab = sh(shstrndx)[4]
sec = {}
for i in range(shnum):
    name, _, _, _, off, size = sh(i)[:6]
    sec[b[strtab + name : b.index(0, strtab + name)].decode()] = (off, size)
base, total = sec[".nv_fatbin"]
cuda = ctypes.CDLL("libcuda.so.1")
dev, ctx, major, minor = ctypes.c_int(), ctypes.c_void_p(), ctypes.c_int(), ctypes.c_int()
assert cuda.cuInit(0) == 0
assert cuda.cuDeviceGet(ctypes.byref(dev), 0) == 0
cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, dev)
cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev)
sm = major.value * 10 + minor.value
assert cuda.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev) == 0
assert cuda.cuCtxSetCurrent(ctx) == 0
p = 0
stats = {"loaded": 0, "refused_without_code": 0, "refused_with_code": 0}
errors = {}
while p < total:
    magic, _, hsz, fsz = struct.unpack_from("<IHHQ", b, base + p)
    if magic != 0xBA55ED50:
        p += 8
        continue
    q, end, archs = p + hsz, p + hsz + fsz, set()
    while q < end:
        _, _, ehsz, psz = struct.unpack_from("<HHIQ", b, base + q)
        archs.add(struct.unpack_from("<I", b, base + q + 28)[0])
        q += ehsz + psz
    image = ctypes.create_string_buffer(bytes(b[base + p : base + end]))
    mod = ctypes.c_void_p()
    rc = cuda.cuModuleLoadData(ctypes.byref(mod), image)
    if rc == 0:
        stats["loaded"] += 1
        cuda.cuModuleUnload(mod)
    else:
        key = "refused_with_code" if sm in archs else "refused_without_code"
        stats[key] += 1
        errors[rc] = errors.get(rc, 0) + 1
    p = end
print(f"fatbin check on sm_{sm}: {stats}, driver errors {errors}")
sys.exit(0 if stats["refused_with_code"] == 0 and stats["loaded"] > 0 else 1)
PY
}

store_parts
[ -f "$STORE/MANIFEST" ] || { say "no MANIFEST in $STORE: no part has been carried yet"; exit 2; }

ort_name=$(component ort-gpu-)
if [ -n "$ort_name" ] && [ ! -f "$WORK/ort/libonnxruntime_providers_cuda.so" ] && ort=$(assemble "$ort_name" 2>/dev/null); then
  mkdir -p "$WORK/ort"
  unxz_stream "$ort" | tar -xf - -C "$WORK/ort"
  say "provider libraries unpacked: $(ls "$WORK/ort" | tr '\n' ' ')"
  if [ "$GPU" = 1 ]; then
    check_fatbins "$WORK/ort/libonnxruntime_providers_cuda.so" | tee "$WORK/fatbin-check.txt"
    [ "${PIPESTATUS[0]}" = 0 ] || say "WARNING: the driver refused kernels of this GPU's architecture; the CUDA provider will fail"
  fi
fi
[ "$MODE" = receive ] && exit 0

# --- run ---------------------------------------------------------------------------------------------------
fail=0
for prefix in node- node_modules models frames- lfw-dev; do
  name=$(component "$prefix")
  [ -n "$name" ] || continue
  assemble "$name" >/dev/null || fail=1
done
[ -f "$WORK/ort/libonnxruntime_providers_cuda.so" ] || { say "the provider libraries are not complete"; fail=1; }
[ "$fail" = 0 ] || { say "missing parts: carry every .gpu-bundle/pN (scripts/gpu-bundle.sh) first"; exit 3; }

say "unpacking"
node_xz=$WORK/$(component node-)
if [ ! -x "$WORK/node/bin/node" ]; then
  mkdir -p "$WORK/node/bin"
  unxz_stream "$node_xz" >"$WORK/node/bin/node.tmp" && chmod +x "$WORK/node/bin/node.tmp" && mv "$WORK/node/bin/node.tmp" "$WORK/node/bin/node" &
fi
# node_modules goes into the tree, where tsx and Node's resolver look; a developer's own is never touched.
if [ ! -e node_modules ] || [ -f node_modules/.vigil-gpu-bundle ]; then
  if [ ! -f node_modules/.vigil-gpu-bundle ]; then
    (unxz_stream "$WORK/node_modules.tar.xz" | tar -xf - && touch node_modules/.vigil-gpu-bundle) &
  fi
  OWN_NODE_MODULES=1
else
  say "node_modules already exists here (not from the bundle): using it as it is"
  OWN_NODE_MODULES=0
fi
mkdir -p .vigil/models
unxz_stream "$WORK/$(component models)" | tar -xf - -C .vigil/models &
frames_xz=$WORK/$(component frames-)
[ -f "$WORK/frames.yuv" ] || unxz_stream "$frames_xz" >"$WORK/frames.yuv" &
lfw_tar=$(component lfw-dev)
if [ -n "$lfw_tar" ] && [ ! -d "$WORK/lfw-dev" ]; then tar -xf "$WORK/$lfw_tar" -C "$WORK" & fi
wait
export PATH="$WORK/node/bin:$PATH"
ORT_DIR=node_modules/onnxruntime-node/bin/napi-v6/linux/x64
if [ "$OWN_NODE_MODULES" = 1 ]; then cp -f "$WORK"/ort/*.so "$ORT_DIR/"; fi
say "node $(node --version); GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo none)"
say "provider libraries beside $(ls "$ORT_DIR" | tr '\n' ' ')"

export ONNXRUNTIME_NODE_INSTALL=skip VIGIL_MODELS__SOURCES='["mirror"]' VIGIL_LOG_LEVEL=warn
# ONNX Runtime prints its own line for a provider that fails to load; Vigil's error says more.
vigil() { node bin/vigil.js "$@"; }
out() { if [ -n "$OUTDIR" ]; then echo "$OUTDIR/$1"; else echo "$WORK/$1"; fi; }
frame_args=(--frames "$WORK/frames.yuv" --frame-size 1280x720)

say "vigil bench gpu"
# shellcheck disable=SC2086
VIGIL_MODELS__EXECUTION_PROVIDER=cuda timeout 420 node bin/vigil.js bench gpu --json --out "$(out bench-gpu.json)" \
  "${frame_args[@]}" ${BENCH_ARGS:-} >/dev/null 2> >(tee "$(out bench-gpu.log)" >&2)
say "bench exit $?"

if [ "${LFW:-1}" != 0 ] && [ -d "$WORK/lfw-dev" ]; then
  lfw_args=(eval lfw --images "$WORK/lfw-dev/images" --pairs "$WORK/lfw-dev/pairs.txt" --json)
  if [ "$GPU" = 1 ]; then
    say "LFW on CUDA and on the CPU (side by side)"
    VIGIL_MODELS__EXECUTION_PROVIDER=cuda timeout 240 node bin/vigil.js "${lfw_args[@]}" >"$(out lfw-cuda.json)" 2>>"$(out lfw.log)" &
  else
    say "LFW on the CPU"
  fi
  VIGIL_MODELS__EXECUTION_PROVIDER=cpu timeout 240 node bin/vigil.js "${lfw_args[@]}" >"$(out lfw-cpu.json)" 2>>"$(out lfw.log)" &
  wait
fi

say "TensorRT"
VIGIL_MODELS__EXECUTION_PROVIDER=tensorrt timeout 60 node --import tsx --input-type=module -e '
  const { createSession } = await import("./lib/vision/inference/runtime.ts");
  const { loadConfig } = await import("./lib/config/index.ts");
  const config = loadConfig();
  try {
    await createSession(".vigil/models/reid-0095.onnx", config.models, { dataDir: config.dataDir });
    console.log("tensorrt: session created");
  } catch (err) { console.log(err.message); }
' >"$(out tensorrt.txt)" 2>/dev/null
cat "$(out tensorrt.txt)"

# One summary of the figures, from the JSON files.
node --input-type=module -e '
  import { readFileSync, existsSync } from "node:fs";
  const [benchFile, cudaFile, cpuFile, fatbinFile] = process.argv.slice(1);
  const read = (f) => { try { return existsSync(f) ? JSON.parse(readFileSync(f, "utf8")) : undefined; } catch { return undefined; } };
  const b = read(benchFile), lc = read(cudaFile), lp = read(cpuFile);
  const lines = [];
  if (existsSync(fatbinFile)) lines.push(readFileSync(fatbinFile, "utf8").trim());
  if (b) {
    lines.push(`GPU ${b.gpu ? b.gpu.name + " driver " + b.gpu.driver : "none"}; provider ${b.provider ?? "none"}`);
    for (const f of b.figures) {
      lines.push(`${f.provider} detect ${b.detectInput.width}x${b.detectInput.height} frames/s: ${f.detect.map((t) => `b${t.batch}=${t.perSecond.toFixed(0)}`).join(" ")}; one thread with yuv->tensor ${f.detectFpsWithPrep.toFixed(0)}`);
      lines.push(`${f.provider} embed faces/s: ${f.embed.map((t) => `b${t.batch}=${t.perSecond.toFixed(0)}`).join(" ")}`);
    }
    if (b.parity) lines.push(`parity: landmarks within ${b.parity.maxLandmarkDeltaPx.toFixed(4)} px, faces ${b.parity.facesGpu}/${b.parity.facesCpu}, embedding cosine ${b.parity.minEmbeddingCosine.toFixed(6)}`);
    lines.push(`decode: ${b.decode.note}`);
    if (b.e2e) for (const s of b.e2e.steps) lines.push(`e2e ${s.cameras} cameras: processed ${s.processedRatio.toFixed(3)} (${s.processed}/${s.offered}), p95 alert ${Math.round(s.p95AlertMs)} ms, ${s.alerts} alerts, ${s.pass ? "pass" : "FAIL"}`);
    lines.push(`HEADLINE detectFps=${b.detectFps.toFixed(0)} embedFacesPerSecond=${b.embedFacesPerSecond.toFixed(0)} camerasAt5fps=${b.camerasAt5fps}`);
  } else lines.push("no bench result");
  for (const [label, l] of [["cuda", lc], ["cpu", lp]]) if (l) lines.push(`LFW ${label}: accuracy ${(l.accuracy * 100).toFixed(2)} % ± ${(l.std * 100).toFixed(2)} (folds ${l.folds.map((f) => (f.accuracy * 100).toFixed(2)).join(" / ")}), no face ${l.noFace?.length ?? "?"}, ${l.seconds?.toFixed?.(0) ?? "?"} s`);
  if (lc && lp) lines.push(`LFW cuda - cpu: ${((lc.accuracy - lp.accuracy) * 100).toFixed(3)} points`);
  console.log(lines.join("\n"));
' "$(out bench-gpu.json)" "$(out lfw-cuda.json)" "$(out lfw-cpu.json)" "$WORK/fatbin-check.txt" | tee "$(out summary.txt)"
say "done"
