# Shell helpers the rigs source (bash deploy/bench/*.sh).

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT: waits up to 20 s for a listener on 127.0.0.1:PORT, and
# ends the rig if none comes.
wait_port() {
  for _ in $(seq 200); do
    port_free "$1" || return 0
    sleep 0.1
  done
  echo "port $1 not up"
  exit 1
}

# fetch_first LOG CURL_ARGS...: the first request to a freshly started
# edgeblock, tried once a second for up to 30 s. An open port does not
# mean the edge serves the name yet: the first TLS handshake for a name
# gets its certificate (on demand, from the internal CA), which a loaded
# machine can fail or time out. Gives up with edgeblock's log (LOG).
fetch_first() {
  local log=$1 rc=0
  shift
  for _ in $(seq 30); do
    rc=0
    curl -sk --max-time 10 "$@" && return 0 || rc=$?
    sleep 1
  done
  echo "edgeblock did not answer curl ${*: -1} within 30 s (curl exit $rc); the end of its log:"
  tail -20 "$log"
  return 1
}
