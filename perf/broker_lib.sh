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
