#!/usr/bin/env bash
# Runs Ferry's whole test suite on a throwaway PostgreSQL cluster.
#
# Installs whatever is missing first (same steps as setup.sh), passes its
# arguments to pytest, stops PostgreSQL on exit, and returns pytest's status;
# "no tests collected" (pytest's exit code 5) counts as a failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ferry_install
cd "$FERRY_ROOT"
# pytest.ini names the test settings; a settings module left in the
# environment would win over it.
unset DJANGO_SETTINGS_MODULE
trap ferry_postgres_stop EXIT
trap 'exit 130' INT TERM
ferry_postgres_start

status=0
"$FERRY_VENV/bin/pytest" "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
