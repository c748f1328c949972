#!/usr/bin/env bash
# The README's main job: installs what is missing, then runs sample media through the embedded pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
exec node bin/vigil.js demo "$@"
