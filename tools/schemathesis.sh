#!/usr/bin/env bash
# Fuzzes the service's API from its own /openapi.json with schemathesis (PyPI, pinned in
# tools/requirements-schemathesis.txt) against a fresh `valet up` on 127.0.0.1, which is stopped
# by its PID at the end. Every answer must be a documented 4xx/2xx with a JSON body — never a 5xx.
# Not checked: "schema-valid requests are accepted" — a session spec's validity (TOML, function
# signatures, known names) is beyond JSON Schema; the server answers 400 naming the problem.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$root/target/schemathesis-venv
requirements=$root/tools/requirements-schemathesis.txt
if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check --no-input -r "$requirements"
    cp "$requirements" "$venv/requirements.txt"
fi

data=$(mktemp -d)
"$root/target/debug/valet" up --port 0 --data-dir "$data" --json >"$data/up.json" 2>"$data/up.log" &
pid=$!
cleanup() { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
for _ in $(seq 1 120); do
    [ -s "$data/up.json" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$data/up.log" >&2; exit 1; }
    sleep 0.5
done
url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$data/up.json")
key=$(python3 - "$url" "$data/admin.token" <<'PY'
import json, sys, urllib.request
url, token = sys.argv[1], open(sys.argv[2]).read().strip()
req = urllib.request.Request(url + "/v1/apps", data=json.dumps({"name": "schemathesis"}).encode(),
                             headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req))["api_key"])
PY
)
"$venv/bin/st" run "$url/openapi.json" \
    --header "Authorization: Bearer $key" \
    --exclude-checks positive_data_acceptance \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-40}" \
    --generation-deterministic \
    --request-timeout 20 \
    --workers 1
