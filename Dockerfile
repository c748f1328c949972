# syntax=docker/dockerfile:1
# Vigil's image: the compiled build (dist/), production dependencies, ffmpeg from Debian, and the default model
# pack pulled and checked at build time, so a running pod fetches nothing (models.sources: ["mirror"] in
# deploy/k8s). Non-root. Two targets:
#
#   docker build -t vigil .                                  CPU (the last stage, the default)
#   docker build --target vigil-gpu -t vigil:gpu .            + ONNX Runtime's CUDA provider and its libraries
#
# With a local copy of the models (the development mirror), nothing is downloaded for them:
#   docker build --build-context models=../shared/models -t vigil .
#
# Checked by hadolint in the test command (test/k8s-manifests.test.ts).

ARG NODE_IMAGE=node:20-bookworm-slim
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# The model mirror, empty unless --build-context models=<dir> replaces it.
FROM scratch AS models

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# onnxruntime-node's install script would download CUDA libraries; the CPU library ships in the package, and the
# GPU target adds the providers from PyPI instead.
ENV ONNXRUNTIME_NODE_INSTALL=skip
# Compilers only for a native module whose prebuilt binary cannot be had (better-sqlite3 falls back to a build).
# hadolint ignore=DL3008
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json tsconfig.build.json ./
COPY lib lib
COPY services services
COPY cli cli
COPY bin bin
COPY web web
COPY scripts/console-size.mjs scripts/
RUN npm run build && npm prune --omit=dev --no-audit --no-fund --loglevel=error
# The default pack only, into the folder the runtime stages read (VIGIL_MODELS__CACHE_DIR), checked by sha256.
RUN --mount=type=bind,from=models,target=/mirror \
  VIGIL_MODEL_MIRROR=/mirror VIGIL_MODELS__CACHE_DIR=/opt/vigil/models VIGIL_DATA_DIR=/tmp/vigil \
  node dist/cli/main.js models pull --pack yunet-reid0095 \
  && VIGIL_MODELS__CACHE_DIR=/opt/vigil/models node dist/cli/main.js models verify --pack yunet-reid0095

# ONNX Runtime's CUDA provider for onnxruntime-node: the same version's libraries from PyPI's onnxruntime-gpu
# wheel (onnxruntime-node ships only the CPU library for linux-x64), with the CUDA 13 and cuDNN 9 libraries it
# links against (docs/gpu.md).
FROM ${PYTHON_IMAGE} AS gpu-libs
RUN pip install --no-cache-dir --target /opt/ort-gpu \
  onnxruntime-gpu==1.30.0 \
  nvidia-cuda-runtime==13.5.37 \
  nvidia-cublas==13.10.0.20 \
  nvidia-curand==10.4.5.25 \
  nvidia-cufft==12.5.0.14 \
  nvidia-cuda-nvrtc==13.5.37 \
  nvidia-nvjitlink==13.5.37 \
  nvidia-cudnn-cu13==9.28.1.4 \
  && mkdir -p /opt/cuda/lib /opt/ort-providers \
  && cp -a /opt/ort-gpu/nvidia/*/lib/*.so* /opt/cuda/lib/ \
  && cp /opt/ort-gpu/onnxruntime/capi/libonnxruntime_providers_shared.so \
    /opt/ort-gpu/onnxruntime/capi/libonnxruntime_providers_cuda.so /opt/ort-providers/

# What both targets share.
FROM ${NODE_IMAGE} AS runtime
# Debian's ffmpeg: the decoder every camera runs (and NVDEC through -hwaccel cuda where the driver offers it).
# Unpinned on purpose: Debian's security updates replace exact versions, which would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
  && apt-get install -y --no-install-recommends ffmpeg \
  && rm -rf /var/lib/apt/lists/* \
  && groupadd --system --gid 10001 vigil \
  && useradd --system --uid 10001 --gid vigil --home-dir /var/lib/vigil --no-create-home vigil \
  && mkdir -p /var/lib/vigil \
  && chown vigil:vigil /var/lib/vigil
WORKDIR /app
ENV NODE_ENV=production \
  VIGIL_DATA_DIR=/var/lib/vigil \
  VIGIL_MODELS__CACHE_DIR=/opt/vigil/models
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /opt/vigil/models /opt/vigil/models
USER 10001:10001
# vigil serve <stage>: /healthz, /readyz and /metrics.
EXPOSE 9464
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["--help"]

FROM runtime AS vigil-gpu
# ONNX Runtime loads provider libraries only from the folder of libonnxruntime.so.1.
COPY --from=gpu-libs /opt/ort-providers/ /app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/
COPY --from=gpu-libs /opt/cuda/lib /opt/cuda/lib
# libcuda.so.1 comes from the node's driver, mounted by the NVIDIA container toolkit.
ENV LD_LIBRARY_PATH=/opt/cuda/lib \
  NVIDIA_VISIBLE_DEVICES=all \
  NVIDIA_DRIVER_CAPABILITIES=compute,utility,video

# The default target: CPU only.
FROM runtime AS vigil
