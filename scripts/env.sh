# Sourced by the scripts: the development data and model mirror beside the project, when present.
if [ -z "${VIGIL_MODEL_MIRROR:-}" ] && [ -d ../shared/models ]; then
  export VIGIL_MODEL_MIRROR="$(cd ../shared/models && pwd)"
fi
if [ -z "${VIGIL_SHARED_DATA:-}" ] && [ -d ../shared/data ]; then
  export VIGIL_SHARED_DATA="$(cd ../shared/data && pwd)"
fi
export ONNXRUNTIME_NODE_INSTALL=skip
