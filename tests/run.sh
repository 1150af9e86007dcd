#!/usr/bin/env bash
# The test command: installs what the tests need on a fresh Debian machine
# (Redis, HAProxy, nginx, Chromium, Node packages, the project), then runs pytest.
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
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

python3 -m pip install -q -e '.[test]' 2>&1 | grep -v '^WARNING' || true
for dir in tests/reference tests/js; do
  if [ -f "$dir/package.json" ]; then
    npm install --silent --no-audit --no-fund --prefix "$dir" >/dev/null
  fi
done

exec python3 -m pytest "$@"
