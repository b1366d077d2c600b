# Sourced by the perf scripts that start their own broker: one copy of "a free port" and
# "wait until the broker listens", which each script used to write out again.

# free_port: a TCP port on 127.0.0.1 nothing listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for_port PORT [TRIES]: returns 0 once 127.0.0.1:PORT accepts a connection, 1 after
# TRIES tries 0.1 s apart (default 100: 10 s).
wait_for_port() {
  local tries="${2:-100}"
  for _ in $(seq 1 "$tries"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# spawn_broker BIN WORK [ARGS...]: starts `BIN serve` on a fresh data dir under WORK, with
# free ports (sets `port`, `admin` and `pid`), its output in WORK/broker.log, and waits
# until it listens (a broker that never does is left for the caller's run to report).
spawn_broker() {
  local bin="$1" work="$2"
  shift 2
  port="$(free_port)"; admin="$(free_port)"
  "$bin" serve --data-dir "$work/data" --listen "127.0.0.1:$port" \
    --admin-listen "127.0.0.1:$admin" "$@" > "$work/broker.log" 2>&1 &
  pid=$!
  wait_for_port "$port" || true
}
