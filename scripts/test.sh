#!/usr/bin/env bash
# The README's test command: installs what is missing, then type-check, lint, format check and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
VIGIL_SETUP_TEST_DEPS=1 bash scripts/setup.sh
source scripts/env.sh
mkdir -p .vigil

echo "== type-check"; npx tsc --noEmit -p tsconfig.json
echo "== lint"; npx eslint .
echo "== format"; npx prettier --check . >/dev/null && echo "formatted"
echo "== build"; npm run --silent build && echo "dist/ built"
echo "== tests"
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=.vigil/vitest.json "$@" || status=$?
# One plain closing line any CI reader understands.
node -e '
  const r = JSON.parse(require("fs").readFileSync(".vigil/vitest.json", "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
' || true
exit $status
