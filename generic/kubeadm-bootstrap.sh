#!/bin/sh
# Slipway kubeadm bootstrap: makes this machine a member of its Kubernetes cluster, once.
# The role configs write it (raw, not a template) to /opt/slipway/bin/kubeadm-bootstrap and run it
# from slipway-kubeadm.service after the network, containerd and the kubernetes sysext are up.
#   1. Done before (a marker under /var/lib/slipway)? Exit: a reboot never re-inits or re-joins.
#   2. Joining members wait until the control-plane endpoint answers (/readyz, which Kubernetes
#      lets anyone read), reporting `waiting_for_endpoint`.
#   3. `kubeadm init` (the first control-plane member) or `kubeadm join`, with the configuration the
#      engine rendered (/etc/slipway/kubeadm.yaml), reporting `running`. Every certificate and
#      kubeconfig is already there (the engine is the cluster's CA): kubeadm generates none.
#   4. Success: the marker, and `done`. Failure: `failed` with the last lines of kubeadm's output,
#      kubeadm's leftovers removed (the engine's files put back), exit 1: systemd retries.
# Each phase is reported to the engine (POST /lifecycle/bootstrap) with the machine's credential.
# POSIX sh with curl or busybox wget. Settings: /etc/slipway/cluster.env and lifecycle.env.
set -u

CLUSTER_ENV="${SLIPWAY_CLUSTER_ENV:-/etc/slipway/cluster.env}"
LIFECYCLE_ENV="${SLIPWAY_LIFECYCLE_ENV:-/etc/slipway/lifecycle.env}"
# Read, not sourced: the values are raw (systemd EnvironmentFile style) and URLs hold `&`.
for file in "$CLUSTER_ENV" "$LIFECYCLE_ENV"; do
  [ -r "$file" ] || continue
  while IFS= read -r line; do
    case "$line" in SLIPWAY_*=*) export "${line%%=*}=${line#*=}" ;; esac
  done < "$file"
done
KUBEADM="${SLIPWAY_KUBEADM:-kubeadm}"
CONFIG="${SLIPWAY_KUBEADM_CONFIG:-/etc/slipway/kubeadm.yaml}"
STATE="${SLIPWAY_STATE_DIR:-/var/lib/slipway}"
KUBERNETES_DIR="${SLIPWAY_KUBERNETES_DIR:-/etc/kubernetes}"
DONE="$STATE/kubeadm.done"
SAVED="$STATE/kubernetes-files"
LOG="$STATE/kubeadm.log"
ENDPOINT_WAIT_SECONDS="${SLIPWAY_ENDPOINT_WAIT_SECONDS:-1800}"

say() { echo "slipway-kubeadm: $*"; }

# A JSON string of stdin: quotes, backslashes and control characters escaped.
json_string() {
  printf '"'
  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\t/\\t/g' -e 's/\r//g' | tr -d '\000-\010\013\014\016-\037' | awk 'NR > 1 { printf "\\n" } { printf "%s", $0 }'
  printf '"'
}

# phase message [log-file]: tells the engine where this machine is; never fails the bootstrap.
report() {
  [ -n "${SLIPWAY_URL:-}" ] && [ -n "${SLIPWAY_MACHINE_CREDENTIAL:-}" ] || return 0
  body="$STATE/report.json"
  {
    printf '{"phase":"%s","command":"%s","message":' "$1" "$COMMAND"
    printf '%s' "$2" | json_string
    if [ -n "${3:-}" ] && [ -r "$3" ]; then printf ',"log":'; tail -n 40 "$3" | json_string; fi
    printf '}'
  } > "$body"
  auth="Authorization: Bearer $SLIPWAY_MACHINE_CREDENTIAL"
  url="$SLIPWAY_URL/lifecycle/bootstrap"
  if command -v curl >/dev/null 2>&1; then
    curl --fail --silent --show-error --max-time 30 --retry 3 -H "$auth" -H 'Content-Type: application/json' --data-binary "@$body" "$url" >/dev/null || say "could not report $1"
  else
    timeout 30 wget -q -O /dev/null --header "$auth" --header 'Content-Type: application/json' --post-file "$body" "$url" || say "could not report $1"
  fi
}

# Whether the control-plane endpoint answers /readyz with ok (its certificate checked against the cluster CA).
endpoint_ready() {
  url="https://$SLIPWAY_ENDPOINT/readyz"
  if command -v curl >/dev/null 2>&1; then
    [ "$(curl --silent --max-time 10 --cacert "$KUBERNETES_DIR/pki/ca.crt" "$url" 2>/dev/null)" = ok ]
  else
    [ "$(timeout 10 wget -q -O - --ca-certificate="$KUBERNETES_DIR/pki/ca.crt" "$url" 2>/dev/null)" = ok ]
  fi
}

mkdir -p "$STATE"
COMMAND="$(sed -n 's/^kind: \(Init\|Join\)Configuration$/\1/p' "$CONFIG" | tr 'IJ' 'ij')"
if [ -e "$DONE" ]; then
  say "this machine already ran kubeadm $(cat "$DONE"); nothing to do"
  exit 0
fi
case "$COMMAND" in
  init|join) ;;
  *) COMMAND=unknown; report failed "$CONFIG holds no InitConfiguration or JoinConfiguration"; exit 1 ;;
esac

# The engine's files, kept aside before kubeadm runs, so that cleaning up after a failure never
# loses them (kubeadm reset empties the certificates folder).
if [ ! -d "$SAVED" ]; then
  mkdir -p "$SAVED.tmp" && cp -a "$KUBERNETES_DIR/." "$SAVED.tmp/" && mv "$SAVED.tmp" "$SAVED"
fi

if [ "$COMMAND" = join ]; then
  waited=0
  until endpoint_ready; do
    [ "$waited" = 0 ] && report waiting_for_endpoint "waiting for https://$SLIPWAY_ENDPOINT/readyz"
    if [ "$waited" -ge "$ENDPOINT_WAIT_SECONDS" ]; then
      report failed "the control-plane endpoint https://$SLIPWAY_ENDPOINT did not answer within ${ENDPOINT_WAIT_SECONDS}s"
      exit 1
    fi
    sleep 10
    waited=$((waited + 10))
  done
fi

report running "kubeadm $COMMAND --config $CONFIG"
say "kubeadm $COMMAND --config $CONFIG"
"$KUBEADM" "$COMMAND" --config "$CONFIG" > "$LOG" 2>&1
status=$?
cat "$LOG"
if [ "$status" = 0 ]; then
  echo "$COMMAND" > "$DONE"
  report done "kubeadm $COMMAND succeeded" "$LOG"
  exit 0
fi
report failed "kubeadm $COMMAND exited with status $status" "$LOG"
# Remove what kubeadm left (static pods, etcd data, its kubelet settings), then put the engine's files back.
"$KUBEADM" reset --force > "$STATE/kubeadm-reset.log" 2>&1 || say "kubeadm reset failed (see $STATE/kubeadm-reset.log)"
cp -a "$SAVED/." "$KUBERNETES_DIR/"
exit 1
