#!/usr/bin/env bash
# Idempotent set-up for a fresh machine of this kind. Each step is skipped when a stamp shows
# that its inputs (lock files) have not changed since it last succeeded.
#   scripts/setup.sh            venv + Pyodide/PyScript + browser wheels (enough to run the product)
#   scripts/setup.sh --browser  the above + Debian's chromium, postgresql and nginx (needed by the tests)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STAMPS="$ROOT/.setup-stamps"
mkdir -p "$STAMPS"

want_browser=0
[[ "${1:-}" == "--browser" ]] && want_browser=1

stamp_ok() { [[ -f "$STAMPS/$1" ]] && [[ "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_set() { echo "$2" > "$STAMPS/$1"; }
say() { echo "[setup] $*"; }

PYTHON=${PYTHON:-python3}

# 1. Python virtual environment with pinned dependencies.
h=$(cat requirements.lock | sha256sum | cut -d' ' -f1)
if [[ -x .venv/bin/python ]] && stamp_ok venv "$h"; then
  say "venv up to date"
else
  say "creating .venv from requirements.lock"
  [[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
  stamp_set venv "$h"
fi

# 2. Pyodide and PyScript from npm (package-lock.json pins them), copied under static/vendor.
PYODIDE_VERSION=$(node -p "require('./package-lock.json').packages['node_modules/pyodide'].version")
PYSCRIPT_VERSION=$(node -p "require('./package-lock.json').packages['node_modules/@pyscript/core'].version")
h=$(cat package-lock.json scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [[ -f "static/vendor/pyodide/$PYODIDE_VERSION/pyodide.mjs" ]] && [[ -f "static/vendor/pyscript/$PYSCRIPT_VERSION/core.js" ]] && stamp_ok vendor "$h"; then
  say "pyodide $PYODIDE_VERSION and pyscript $PYSCRIPT_VERSION up to date"
else
  say "installing pyodide $PYODIDE_VERSION and pyscript $PYSCRIPT_VERSION from npm"
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  rm -rf static/vendor
  mkdir -p "static/vendor/pyodide/$PYODIDE_VERSION" "static/vendor/pyscript/$PYSCRIPT_VERSION"
  for f in pyodide.mjs pyodide.js pyodide.asm.mjs pyodide.asm.wasm python_stdlib.zip pyodide-lock.json; do
    [[ -f "node_modules/pyodide/$f" ]] && cp "node_modules/pyodide/$f" "static/vendor/pyodide/$PYODIDE_VERSION/"
  done
  cp -r node_modules/@pyscript/core/dist/. "static/vendor/pyscript/$PYSCRIPT_VERSION/"
  stamp_set vendor "$h"
fi

# 3. Browser wheels for Pyodide (pinned with hashes).
h=$(cat browser-requirements.txt | sha256sum | cut -d' ' -f1)
if [[ -f static/wheels/wheels.json ]] && stamp_ok wheels "$h"; then
  say "browser wheels up to date"
else
  say "downloading browser wheels"
  rm -rf static/wheels && mkdir -p static/wheels
  .venv/bin/python -m pip download --quiet --disable-pip-version-check --require-hashes --no-deps \
    --only-binary=:all: --platform pyemscripten_2026_0_wasm32 --python-version 3.14 \
    -r browser-requirements.txt -d static/wheels
  .venv/bin/python - <<'PY'
import json, pathlib
names = sorted(p.name for p in pathlib.Path("static/wheels").glob("*.whl"))
pathlib.Path("static/wheels/wheels.json").write_text(json.dumps(names, indent=1))
PY
  stamp_set wheels "$h"
fi

# 3c. The Python client for Pyodide (/static/wheels/client/): its wheel, built from client/ and
# the page's shared modules, and its pure-Python dependencies (pinned with hashes);
# client/wheels.json lists them with the page's pydantic wheels, relative to /static/wheels/.
h=$(cat client-requirements.txt static/wheels/wheels.json client/pyproject.toml app/models.py app/errors.py \
      app/routes.py $(find client/cellhub_client -name '*.py' | sort) | sha256sum | cut -d' ' -f1)
if [[ -f static/wheels/client/wheels.json ]] && stamp_ok client_wheels "$h"; then
  say "client wheels up to date"
else
  say "building the client wheel and downloading its dependencies"
  rm -rf static/wheels/client && mkdir -p static/wheels/client
  .venv/bin/python -m pip download --quiet --disable-pip-version-check --require-hashes --no-deps \
    --only-binary=:all: --platform pyemscripten_2026_0_wasm32 --python-version 3.14 \
    -r client-requirements.txt -d static/wheels/client
  .venv/bin/python -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation \
    ./client -w static/wheels/client
  .venv/bin/python - <<'PY'
import json, pathlib
wheels = pathlib.Path("static/wheels")
mine = sorted(f"client/{p.name}" for p in (wheels / "client").glob("*.whl"))
page = json.loads((wheels / "wheels.json").read_text())
(wheels / "client" / "wheels.json").write_text(json.dumps(mine + page, indent=1))
PY
  stamp_set client_wheels "$h"
fi

# 3b. The page's precompiled bytecode (server/bytecode.py): built once per change of the app,
# the wheels or Pyodide, so the first page already boots from it (CELLHUB_BYTECODE=0: none).
# A failure costs speed only.
say "page bytecode bundle"
.venv/bin/python -m server bytecode || say "no bytecode bundle: the page compiles its modules itself"

# 3c. The page's memory snapshot (server/snapshot.py): the interpreter with the wheels loaded
# and the app imported, restored by the page instead of starting Python (CELLHUB_SNAPSHOT=0:
# none). Built likewise once per change of its sources (about a minute). A failure costs speed only.
say "page memory snapshot"
.venv/bin/python -m server snapshot || say "no memory snapshot: the page boots Python from the start"

# 4. Chromium from Debian (tests only).
if [[ $want_browser == 1 ]]; then
  if [[ -x /usr/bin/chromium ]]; then
    say "chromium present"
  else
    say "installing Debian's chromium"
    SUDO=""; [[ $(id -u) != 0 ]] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  fi
fi
# 5. PostgreSQL and nginx from Debian (tests only): the cluster tests start a private
# PostgreSQL (initdb in a temporary folder) and an nginx in front of two web replicas, both
# as an unprivileged user; no system service is started or changed.
if [[ $want_browser == 1 ]]; then
  missing=()
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || missing+=(postgresql)
  command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
  if [[ ${#missing[@]} == 0 ]]; then
    say "postgresql and nginx present"
  else
    say "installing Debian's ${missing[*]}"
    SUDO=""; [[ $(id -u) != 0 ]] && SUDO=sudo
    $SUDO apt-get update -qq
    # RUNLEVEL=1: invoke-rc.d does not start the packages' own services (the tests start theirs).
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
say "ready"
