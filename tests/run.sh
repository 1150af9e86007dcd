#!/usr/bin/env bash
# The test command: installs what the tests need on a fresh Debian machine
# (Redis, HAProxy, nginx, Chromium, Node packages, the project, the deployment checks'
# tools), then runs pytest.
# Extra arguments go to pytest, e.g. `bash tests/run.sh tests/unit -q`.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v chromium >/dev/null || need+=(chromium)
command -v node >/dev/null || need+=(nodejs npm)
# promtool checks /metrics; the prometheus server scrapes sockhop in tests/ops.
command -v promtool >/dev/null && command -v prometheus >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# A failed install stops here with pip's own error (set -e); pip's warning about running
# as root (fresh machines, containers) is the only thing left out.
python3 -m pip install -q --root-user-action=ignore -e '.[test]'
for dir in tests/reference tests/js; do
  if [ -f "$dir/package.json" ]; then
    npm install --silent --no-audit --no-fund --prefix "$dir" >/dev/null
  fi
done

# helm, kubectl, checkov, kubernetes-validate, hadolint and the CRD schema (tests/deploy).
bash tests/deploy/install-tools.sh

exec python3 -m pytest "$@"
