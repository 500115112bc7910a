# Shared by scripts/setup.sh and scripts/test.sh (sourced, never run).
#
# Installs what is missing on a Debian 12 machine (system packages, the
# virtualenv with pinned Python packages, npm assets, compiled messages) and
# runs a throwaway PostgreSQL cluster for the test suite. Every step checks
# first, so running it twice does no work twice.

FERRY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FERRY_VENV=$FERRY_ROOT/.venv
FERRY_PY=$FERRY_VENV/bin/python
FERRY_VAR=${FERRY_VAR_DIR:-$FERRY_ROOT/var}

# Debian packages the quick start and the tests use (see shared TESTING.md):
# services Ferry runs or drives, the test images' binaries, the browser and
# CJK fonts for screenshots, msgfmt for the translations, sshd (only the
# ssh:// host tests start one, on a free loopback port, never the system one),
# and docker-compose (v1), which runs a registry site's export for real.
FERRY_APT_PACKAGES=(
  ca-certificates git python3-venv gettext redis-server postgresql
  docker.io nginx docker-registry skopeo busybox-static chromium fonts-noto-cjk
  openssh-server docker-compose
)

ferry_say() { printf '==> %s\n' "$*"; }
ferry_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

ferry_missing_packages() {
  local pkg
  for pkg in "${FERRY_APT_PACKAGES[@]}"; do
    # Docker's own packages (docker-ce) conflict with Debian's docker.io:
    # any installed engine will do.
    [ "$pkg" = docker.io ] && command -v dockerd >/dev/null 2>&1 && continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
      || printf '%s\n' "$pkg"
  done
  # Node.js may come from elsewhere (its own npm included); Debian's npm
  # package would conflict with such a nodejs, so only ask when npm is absent.
  command -v npm >/dev/null 2>&1 || printf 'nodejs\nnpm\n'
}

ferry_system_packages() {
  local missing
  mapfile -t missing < <(ferry_missing_packages)
  [ "${#missing[@]}" -eq 0 ] && return 0
  ferry_say "Installing system packages: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 \
      || ferry_die "not root and no sudo: install ${missing[*]} yourself"
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# A hash of the files an install step depends on; the step reruns when it changes.
ferry_stamp_matches() {  # stamp-file files...
  local stamp=$1; shift
  local want; want=$(cat "$@" | sha256sum | cut -d' ' -f1)
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  FERRY_STAMP_WANT=$want
  return 1
}

ferry_python_deps() {
  cd "$FERRY_ROOT"
  if [ ! -x "$FERRY_PY" ]; then
    ferry_say "Creating the virtualenv in .venv"
    python3 -m venv "$FERRY_VENV"
  fi
  local stamp=$FERRY_VENV/.ferry-requirements
  ferry_stamp_matches "$stamp" requirements.txt requirements-dev.txt constraints.txt \
    && return 0
  ferry_say "Installing pinned Python packages"
  "$FERRY_PY" -m pip install -q --disable-pip-version-check \
    -r requirements-dev.txt -c constraints.txt
  printf '%s\n' "$FERRY_STAMP_WANT" >"$stamp"
}

ferry_npm_assets() {
  cd "$FERRY_ROOT"
  local stamp=node_modules/.ferry-lock
  if ! ferry_stamp_matches "$stamp" package-lock.json; then
    ferry_say "Installing front-end packages (npm ci)"
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
    printf '%s\n' "$FERRY_STAMP_WANT" >"$stamp"
  fi
  sh scripts/collect_vendor.sh
}

ferry_messages() {
  cd "$FERRY_ROOT"
  compgen -G 'locale/*/LC_MESSAGES/*.po' >/dev/null || return 0
  # --ignore keeps compilemessages out of the virtualenv's own catalogues.
  "$FERRY_PY" manage.py compilemessages -v 0 --ignore=.venv --ignore=node_modules
}

# Everything both commands need before Django can run.
ferry_install() {
  ferry_system_packages
  ferry_python_deps
  ferry_npm_assets
  ferry_messages
}

# A throwaway PostgreSQL cluster for the suite; exports DATABASE_URL. The
# harness's own helper does the work, so tests and this script agree on it.
ferry_postgres_start() {
  FERRY_PG_DIR=$(mktemp -d /tmp/ferry-pg.XXXXXX)
  DATABASE_URL=$(cd "$FERRY_ROOT" \
    && "$FERRY_PY" -m controlplane.testing.services postgres-start "$FERRY_PG_DIR") \
    || ferry_die "PostgreSQL did not start (log: $FERRY_PG_DIR/postgres.log)"
  export DATABASE_URL
  ferry_say "PostgreSQL on ${DATABASE_URL#*@} ($FERRY_PG_DIR)"
}

ferry_postgres_stop() {
  [ -n "${FERRY_PG_DIR:-}" ] && [ -d "$FERRY_PG_DIR" ] || return 0
  (cd "$FERRY_ROOT" && "$FERRY_PY" -m controlplane.testing.services postgres-stop \
    "$FERRY_PG_DIR") || true
  rm -rf "$FERRY_PG_DIR"
  FERRY_PG_DIR=
}
