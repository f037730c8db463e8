#!/usr/bin/env bash
# Build the container image and smoke-test it: the quick study on both backends, as the image's
# non-root user, outputs checked. Used by `make docker` and CI (.ci/run).
#
# On a Debian/Ubuntu machine, as root where something must be installed or started:
# - installs Debian's docker.io (and debootstrap) when dockerd is absent, and starts dockerd in
#   the background when no daemon answers (no bridge network, no iptables rules: builds and
#   containers use the host's network or none);
# - uses $BASE_IMAGE when present or pullable, otherwise makes a local base image once
#   (debootstrap --variant=minbase bookworm with python3, python3-venv, ca-certificates;
#   `docker import`ed as $LOCAL_BASE and reused by later runs);
# - passes this machine's pip configuration (index-url, extra-index-url, find-links) to the
#   build; local directories among them are served on loopback for the build's duration (one
#   HTTP server each; an index directory through its parent, where its pages' ../../files/
#   links point), and the build runs with the host's network to reach them; the certificates added under
#   /usr/local/share/ca-certificates (or $EXTRA_CA_CERTS) reach pip as a BuildKit secret,
#   never a layer;
# - stops, by pid, every daemon and server it started, on success, failure or signal.
# Environment: IMAGE (default iabmeta:smoke), BASE_IMAGE, LOCAL_BASE, EXTRA_CA_CERTS,
# DEBIAN_MIRROR, KEEP_RUNS=DIR (copy the smoke outputs there).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-iabmeta:smoke}"
BASE_IMAGE="${BASE_IMAGE:-python:3.11-slim-bookworm}"
LOCAL_BASE="${LOCAL_BASE:-iabmeta-base:bookworm-minbase}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
export DOCKER_BUILDKIT=1

WORK="$(mktemp -d /tmp/iabmeta-docker.XXXXXX)"
STARTED_PIDS=()          # daemons and servers this script started, stopped in reverse order
CONTAINERS=()            # containers this script runs, removed on exit
DOCKERD_PID=""

log() { printf '[docker-smoke %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

stop_pid() {  # stop_pid PID NAME: TERM, up to 30 s, then KILL
  local pid="$1" name="$2" i
  kill -0 "$pid" 2>/dev/null || return 0
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  log "$name (pid $pid) did not stop in 30 s: killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? c i containerd_pid=""
  trap - EXIT INT TERM
  for c in "${CONTAINERS[@]}"; do
    "$DOCKER" rm -f "$c" >/dev/null 2>&1 || true
  done
  if [ -n "$DOCKERD_PID" ] && [ -f "$WORK/docker-exec/containerd/containerd.pid" ]; then
    containerd_pid="$(cat "$WORK/docker-exec/containerd/containerd.pid")"
  fi
  for (( i=${#STARTED_PIDS[@]}-1; i>=0; i-- )); do
    stop_pid "${STARTED_PIDS[i]%%:*}" "${STARTED_PIDS[i]#*:}"
  done
  # dockerd stops the containerd it started; make sure of it
  if [ -n "$containerd_pid" ]; then stop_pid "$containerd_pid" containerd; fi
  if [ "$rc" -ne 0 ] && [ -f "$WORK/dockerd.log" ]; then
    log "dockerd log (last 20 lines):"; tail -n 20 "$WORK/dockerd.log" || true
  fi
  rm -rf "$WORK"
  if [ "$rc" -ne 0 ]; then log "FAILED (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: $1 needs root; run as root or do it by hand" >&2
    exit 1
  fi
}

elapsed() { echo $(( $(date +%s) - $1 )); }

# --- the container engine --------------------------------------------------------------------
# Debian's client: a newer docker CLI elsewhere on PATH may insist on a buildx plugin that Debian
# does not ship.
if [ -x /usr/bin/docker ] && [ -z "${DOCKER:-}" ]; then DOCKER=/usr/bin/docker; fi
DOCKER="${DOCKER:-docker}"
if ! command -v dockerd >/dev/null || ! command -v "$DOCKER" >/dev/null; then
  need_root "installing docker.io"
  log "installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io >/dev/null
  DOCKER=/usr/bin/docker
fi

if "$DOCKER" info >/dev/null 2>&1; then
  log "using the running container engine"
else
  need_root "starting dockerd"
  log "starting dockerd"
  mkdir -p "$WORK/docker-exec"
  # its own session, so that a signal to this script's process group reaches it only through
  # cleanup(); the socket is the default one, the data root the default one (layer cache kept)
  setsid dockerd --bridge=none --iptables=false --ip-masq=false \
    --exec-root "$WORK/docker-exec" --pidfile "$WORK/dockerd.pid" \
    >"$WORK/dockerd.log" 2>&1 < /dev/null &
  DOCKERD_PID=$!
  STARTED_PIDS+=("$DOCKERD_PID:dockerd")
  for _ in $(seq 1 120); do
    if "$DOCKER" info >/dev/null 2>&1; then break; fi
    if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
      echo "error: dockerd exited while starting; its log:" >&2; cat "$WORK/dockerd.log" >&2; exit 1
    fi
    sleep 0.5
  done
  "$DOCKER" info >/dev/null || { echo "error: dockerd did not answer in 60 s" >&2; exit 1; }
  log "dockerd $("$DOCKER" version --format '{{.Server.Version}}') is up (pid $DOCKERD_PID)"
fi

# --- the base image --------------------------------------------------------------------------
image_exists() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

if image_exists "$BASE_IMAGE"; then
  log "base image $BASE_IMAGE is present"
elif timeout 120 "$DOCKER" pull -q "$BASE_IMAGE" >"$WORK/pull.log" 2>&1; then
  log "pulled $BASE_IMAGE"
else
  log "cannot pull $BASE_IMAGE; using the local base $LOCAL_BASE"
  BASE_IMAGE="$LOCAL_BASE"
  if image_exists "$LOCAL_BASE"; then
    log "local base $LOCAL_BASE is cached"
  else
    need_root "debootstrap"
    if ! command -v debootstrap >/dev/null; then
      log "installing Debian's debootstrap"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
    fi
    t0=$(date +%s)
    log "making $LOCAL_BASE with debootstrap (bookworm, minbase, from $DEBIAN_MIRROR)"
    rootfs="$WORK/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$rootfs" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 \
      || { tail -n 30 "$WORK/debootstrap.log" >&2; exit 1; }
    # the updates and security suites, as in Debian's own images; no package caches or lists
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s-security bookworm-security main\n' \
      "$DEBIAN_MIRROR" "$DEBIAN_MIRROR" "$DEBIAN_MIRROR" >"$rootfs/etc/apt/sources.list"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" --numeric-owner -c . \
      | "$DOCKER" import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$LOCAL_BASE" >/dev/null
    rm -rf "$rootfs"
    log "made $LOCAL_BASE in $(elapsed "$t0") s"
  fi
fi

# --- pip's configuration, passed into the build ----------------------------------------------
# The build arguments hold these servers' URLs, so the ports are fixed ($PIP_SERVE_PORT, +1, ...):
# a new port would invalidate the cached dependency layer. A busy port falls back to a free one.
PIP_SERVE_PORT="${PIP_SERVE_PORT:-48620}"
SERVED_URL=""
SERVED_COUNT=0
serve_dir() {  # serve_dir DIR: serve DIR on loopback; its URL in SERVED_URL
  local dir="$1" n="$SERVED_COUNT" log_file port pid want
  SERVED_COUNT=$(( SERVED_COUNT + 1 ))
  for want in $(( PIP_SERVE_PORT + n )) 0; do
    log_file="$WORK/http-$n-$want.log"
    python3 -u -m http.server --bind 127.0.0.1 --directory "$dir" "$want" >"$log_file" 2>&1 </dev/null &
    pid=$!
    # registered at once, so an exit from here on stops it too (stop_pid skips a dead pid)
    STARTED_PIDS+=("$pid:HTTP server for $dir")
    for _ in $(seq 1 100); do
      # the background job may not have created its log yet
      port="$(sed -n 's/^Serving HTTP on [0-9.]* port \([0-9]*\).*/\1/p' "$log_file" 2>/dev/null \
              || true)"
      if [ -n "$port" ]; then
        SERVED_URL="http://127.0.0.1:$port"
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    stop_pid "$pid" "HTTP server for $dir"
    log "port $want for $dir: $(tail -n 1 "$log_file"); trying another (the dependency layer will be rebuilt)"
  done
  echo "error: no HTTP server for $dir could start" >&2
  exit 1
}

pip_values() {  # pip_values KEY: the values pip's configuration gives KEY, one per line
  { python3 -m pip config list 2>/dev/null || true; } \
    | sed -n "s/^[^=]*\.$1='\(.*\)'\$/\1/p" | tr ' ' '\n' | sed '/^$/d' | awk '!seen[$0]++'
}

# a pip location as the build sees it: URLs as they are, local directories served on loopback
build_args=()
declare -A build_url=()
for key in index-url extra-index-url find-links; do
  urls=()
  while IFS= read -r loc; do
    if [ -z "${build_url[$key:$loc]+set}" ]; then
      path=""
      case "$loc" in
        http://*|https://*) build_url[$key:$loc]="$loc" ;;
        file://*) path="${loc#file://}" ;;
        *) path="$loc" ;;
      esac
      path="${path%/}"
      if [ -n "$path" ] && [ -d "$path" ] && [ "$key" = find-links ]; then
        serve_dir "$path"; build_url[$key:$loc]="$SERVED_URL"
      elif [ -n "$path" ] && [ -d "$path" ]; then
        # an index's pages may link to files beside it (../../files/...): serve its parent
        serve_dir "$(dirname "$path")"; build_url[$key:$loc]="$SERVED_URL/$(basename "$path")/"
      elif [ -n "$path" ]; then
        log "skipping pip location $loc (no such directory)"; build_url[$key:$loc]=""
      fi
    fi
    if [ -n "${build_url[$key:$loc]}" ]; then urls+=("${build_url[$key:$loc]}"); fi
  done < <(pip_values "$key")
  if [ ${#urls[@]} -gt 0 ]; then
    var="PIP_$(echo "$key" | tr '[:lower:]-' '[:upper:]_')"
    build_args+=(--build-arg "$var=${urls[*]}")
    log "pip $key for the build: ${urls[*]}"
  fi
done

secret_args=()
ca_file="$WORK/extra-ca.pem"
if [ -n "${EXTRA_CA_CERTS:-}" ]; then
  cat "$EXTRA_CA_CERTS" >"$ca_file"
else
  shopt -s nullglob
  certs=(/usr/local/share/ca-certificates/*.crt /usr/local/share/ca-certificates/*/*.crt)
  shopt -u nullglob
  if [ ${#certs[@]} -gt 0 ]; then cat "${certs[@]}" >"$ca_file"; fi
fi
if [ -s "$ca_file" ]; then
  secret_args+=(--secret "id=extra_ca,src=$ca_file")
  log "extra CA certificates for pip in the build: $(grep -c 'BEGIN CERTIFICATE' "$ca_file")"
fi

# --- build -----------------------------------------------------------------------------------
log "building $IMAGE on $BASE_IMAGE"
t0=$(date +%s)
"$DOCKER" build --network host --progress plain \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" "${build_args[@]}" "${secret_args[@]}" \
  -t "$IMAGE" . >"$WORK/build.log" 2>&1 \
  || { tail -n 60 "$WORK/build.log" >&2; echo "error: docker build failed" >&2; exit 1; }
build_s=$(elapsed "$t0")
cached_steps=$(grep -c ' CACHED$' "$WORK/build.log" || true)
size_bytes=$("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE")
log "built $IMAGE in $build_s s ($cached_steps steps cached), image size $(( size_bytes / 1000000 )) MB"
# the steps that took 5 s or more
awk '/^#[0-9]+ \[/ { id = $1; sub(/^#[0-9]+ /, ""); name[id] = substr($0, 1, 70) }
     /^#[0-9]+ DONE/ { t = $3; sub(/s$/, "", t)
                       if (t + 0 >= 5 && ($1 in name)) printf "  %6.1f s  %s\n", t, name[$1] }' \
  "$WORK/build.log"

# --- smoke runs ------------------------------------------------------------------------------
check_outputs() {  # check_outputs DIR: report.md, results.json and the phases of every study
  python3 - "$1" <<'EOF'
import json, math, sys
from pathlib import Path
out = Path(sys.argv[1])
report = (out / "report.md").read_text() if (out / "report.md").is_file() else ""
results = json.loads((out / "results.json").read_text())
agents, studies = results.get("agents") or [], results.get("studies") or {}
phases = {p.name for p in (out / "phases").glob("*.json")}
problems = [] if agents and studies else [f"no agents ({agents}) or no studies ({list(studies)})"]
for study, res in studies.items():
    if not any(p.startswith(f"baseline__{study}__") for p in phases):
        problems.append(f"no baseline phase of study {study}")
    for agent in agents:
        for kind in ("train", "adapt"):
            if not any(p.startswith(f"{kind}__{study}__{agent}__") for p in phases):
                problems.append(f"no {kind} phase of {agent} in study {study}")
        m = res.get("methods", {}).get(agent, {})
        if not m.get("n") or not math.isfinite(m.get("throughput_mbps", math.nan)):
            problems.append(f"{agent} in study {study}: no finite throughput ({m.get('n')} runs)")
if len(report) < 500 or "results.json" not in report:
    problems.append(f"report.md missing or cut short ({len(report)} characters)")
if problems:
    sys.exit(f"error: outputs in {out}: " + "; ".join(problems))
print(f"outputs ok: studies {sorted(studies)}, agents {agents}, {len(phases)} phase files, "
      f"report.md {len(report)} characters")
EOF
}

smoke() {  # smoke NAME ARGS...: run `iabmeta reproduce ARGS` in the image, check its outputs
  local name="$1" t0 s container out
  shift
  out="$WORK/runs/$name"
  mkdir -p "$out"
  chmod 0777 "$out"   # written by the image's user (uid 1000)
  container="iabmeta-smoke-$name-$$"
  CONTAINERS+=("$container")
  log "smoke run '$name': iabmeta reproduce${*:+ $*} --quick"
  t0=$(date +%s)
  "$DOCKER" run --rm --name "$container" --network none -v "$out:/home/iab/runs/$name" "$IMAGE" \
    bash -c 'test "$(id -u)" -ne 0 || { echo "error: runs as root" >&2; exit 1; }; exec "$@"' \
    smoke iabmeta reproduce "$@" --quick --jobs 2 --out "/home/iab/runs/$name" >"$WORK/run-$name.log" 2>&1 \
    || { tail -n 40 "$WORK/run-$name.log" >&2; echo "error: smoke run '$name' failed" >&2; exit 1; }
  s=$(elapsed "$t0")
  check_outputs "$out"
  if [ -n "${KEEP_RUNS:-}" ]; then mkdir -p "$KEEP_RUNS" && cp -r "$out" "$KEEP_RUNS/"; fi
  log "smoke run '$name' passed in $s s"
  eval "smoke_${name}_s=$s"
}

smoke fallback
smoke ns3 --backend ns3

log "summary: build $build_s s ($cached_steps cached steps), image $(( size_bytes / 1000000 )) MB," \
  "reproduce --quick ${smoke_fallback_s} s, reproduce --backend ns3 --quick ${smoke_ns3_s} s"
