#!/usr/bin/env bash
# NNC Web: one script, two verbs. Every step is idempotent and skipped when already done.
#   ./dev.sh run [--host H --port P ...]   set up, then run the studio on http://127.0.0.1:8000
#   ./dev.sh test [pytest args...]         set up, then run every test
#   ./dev.sh worker [--queues gpu ...]     set up Python, then run job workers only (another machine)
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

python_bin() {
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$candidate"; return
    fi
  done
  echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1
}

setup_python() {
  if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    "$(python_bin)" -m venv .venv
  fi
  if ! cmp -s requirements.lock .venv/.requirements.lock || ! cmp -s constraints.txt .venv/.constraints.txt; then
    log "installing Python packages (first time: a few minutes)"
    if ! .venv/bin/python -m pip install --disable-pip-version-check -q -r requirements.lock -c constraints.txt \
        > .venv/pip.log 2>&1; then
      grep -v "is ignored" .venv/pip.log >&2; exit 1
    fi
    cp requirements.lock .venv/.requirements.lock
    cp constraints.txt .venv/.constraints.txt
  fi
}

setup_frontend() {
  if ! cmp -s frontend/package-lock.json frontend/node_modules/.nnc-package-lock.json; then
    log "installing frontend packages"
    (cd frontend && npm ci --no-audit --no-fund --loglevel=error)
    cp frontend/package-lock.json frontend/node_modules/.nnc-package-lock.json
  fi
  log "building the SPA"
  (cd frontend && npm run --silent build > /dev/null)
}

setup_static() {
  mkdir -p build/static/bokeh
  local js
  js="$(.venv/bin/python -c 'from bokeh.util.paths import bokehjs_path; print(bokehjs_path() / "js")')"
  cp -u "$js"/bokeh*.min.js build/static/bokeh/
  .venv/bin/python manage.py collectstatic --noinput -v0
  .venv/bin/python manage.py migrate --noinput -v0
}

setup_browser() {
  if ! command -v chromium >/dev/null 2>&1; then
    log "installing Debian's chromium for the browser tests"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium > /dev/null
  fi
}

setup() { setup_python; setup_frontend; setup_static; }

case "${1:-}" in
  run)
    shift; setup
    exec .venv/bin/python manage.py runstack "$@" ;;
  worker)
    shift; setup_python
    exec .venv/bin/python manage.py runworker "$@" ;;
  test)
    shift; setup; setup_browser
    log "running the tests"
    .venv/bin/ruff check .
    exec .venv/bin/python -m pytest "$@" ;;
  *)
    echo "usage: ./dev.sh run [--host H] [--port P] | ./dev.sh test [pytest args] | ./dev.sh worker [--queues gpu]" >&2; exit 2 ;;
esac
