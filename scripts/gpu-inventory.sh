#!/usr/bin/env bash
# What a GPU host offers Vigil: the GPU and driver, CUDA/cuDNN/cuBLAS/TensorRT libraries, Python's inference
# packages, ffmpeg's hardware decoders. Read-only; prints plain text (docs/gpu.md records one run of it).
set -u
section() { printf '\n## %s\n' "$*"; }
section "host"
uname -srm; nproc; grep -m1 'model name' /proc/cpuinfo; free -g | sed -n 2p
section "nvidia-smi"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1 || echo "nvidia-smi: not available"
nvidia-smi 2>&1 | sed -n 3p
section "CUDA libraries known to the loader (ldconfig -p)"
ldconfig -p 2>/dev/null | grep -E 'lib(cudart|cublas|cublasLt|cudnn|nvinfer|nvonnxparser|cufft|curand|nvrtc|nvcuvid|nvidia-encode|cuda)\.so' |
  awk '{print $1, $NF}' | sort -u || true
section "CUDA libraries on disk (common install paths and Python site-packages)"
for d in /usr/local/cuda*/lib64 /usr/local/cuda*/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu /usr/local/nvidia/lib64 /opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib; do
  [ -d "$d" ] || continue
  ls "$d" 2>/dev/null | grep -E '^lib(cudart|cublas|cublasLt|cudnn|nvinfer|nvonnxparser|cufft|curand|nvrtc|nvcuvid|cuda)\.so(\.[0-9]+)?$' |
    sed "s|^|$d/|"
done | sort -u
ls -d /usr/local/cuda* 2>/dev/null
command -v nvcc >/dev/null && nvcc --version | tail -2
section "Python"
command -v python3 && python3 --version
python3 - <<'PY' 2>&1
import importlib, os
for name in ("onnxruntime", "torch", "tensorrt", "cupy"):
    try:
        m = importlib.import_module(name)
        print(name, getattr(m, "__version__", "?"), os.path.dirname(m.__file__))
    except Exception as e:
        print(name, "not importable:", type(e).__name__, str(e)[:120])
try:
    import onnxruntime as ort
    print("onnxruntime providers:", ort.get_available_providers())
    capi = os.path.join(os.path.dirname(ort.__file__), "capi")
    print("onnxruntime capi:", sorted(f for f in os.listdir(capi) if f.endswith(".so") or ".so." in f))
except Exception as e:
    print("onnxruntime capi: -", e)
try:
    import torch
    print("torch cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "available", torch.cuda.is_available())
except Exception as e:
    print("torch:", e)
PY
python3 -m pip list 2>/dev/null | grep -iE '^(onnxruntime|onnxruntime-gpu|tensorrt|nvidia-(cublas|cudnn|cuda-runtime|cuda-nvrtc)[^ ]*|torch) ' || true
section "Node.js"
command -v node && node -v || echo "node: not installed"
section "ffmpeg"
if command -v ffmpeg >/dev/null; then
  ffmpeg -hide_banner -version | head -1
  ffmpeg -hide_banner -hwaccels 2>&1 | tr '\n' ' '; echo
  ffmpeg -hide_banner -decoders 2>/dev/null | grep -E 'cuvid|nvdec' || echo "no cuvid decoders"
  ffmpeg -hide_banner -filters 2>/dev/null | grep -E 'scale_cuda|scale_npp' || echo "no CUDA scale filters"
else
  echo "ffmpeg: not installed"
fi
