#!/bin/sh
# Slipway rolling agent (rendered by the engine from generic/rolling-agent.sh for group {{group.id}}):
# machine-driven rolling updates. A timer runs it every few minutes; each run
#   1. reports the config the machine runs (POST /lifecycle/ignition) and learns if it is outdated;
#   2. asks GET /lifecycle/rolling whether this machine rolls itself (label slipway.io/rolling=machine
#      on the machine) and whether it holds a reboot slot; if the engine drives it, stops here;
#   3. up to date and holding a slot (it just restarted into its new config): uncordons its node,
#      gives the slot back;
#   4. outdated: takes a slot in its cluster's lock group (another run tries again later when they
#      are all taken), drains its node, fetches its new config and restarts into it with apply-config.
# It fails closed: a machine that must drain (all do, unless labelled slipway.io/rolling-drain=skip)
# and has no kubectl or kubeconfig, or whose drain fails, or that cannot fetch its new config, does
# not restart; it gives its slot back and tells the engine why (POST /lifecycle/rolling/refusal).
# POSIX sh with curl or busybox wget, like the discovery agent. Settings: /etc/slipway/lifecycle.env.
set -u

ENV_FILE="${SLIPWAY_LIFECYCLE_ENV:-/etc/slipway/lifecycle.env}"
# Read, not sourced: the values are raw (systemd EnvironmentFile style) and URLs hold `&`.
while IFS= read -r line; do
  case "$line" in SLIPWAY_*=*) export "${line%%=*}=${line#*=}" ;; esac
done < "$ENV_FILE"
RUNNING="${SLIPWAY_RUNNING_CONFIG:-/usr/share/oem/config.ign}"
NEXT="${SLIPWAY_NEXT_CONFIG:-/var/lib/slipway/next.ign}"
APPLY="${SLIPWAY_APPLY_COMMAND:-/opt/slipway/bin/apply-config}"
STRATEGY="${SLIPWAY_STRATEGY:-reboot}"
KUBECONFIG_FILE="${SLIPWAY_KUBECONFIG:-/etc/kubernetes/admin.conf}"
NODE="${SLIPWAY_NODE_NAME:-$(hostname)}"
AUTH="Authorization: Bearer $SLIPWAY_MACHINE_CREDENTIAL"

say() { echo "slipway-rolling: $*"; }

# method url [body-file]: the body on stdout; fails on any non-2xx answer. (`timeout` rather than
# wget's -T: Debian's static busybox 1.35 wget crashes with -T.)
call() {
  if command -v curl >/dev/null 2>&1; then
    if [ -n "${3:-}" ]; then curl --fail --silent --show-error --max-time 60 -X "$1" -H "$AUTH" -H 'Content-Type: application/json' --data-binary "@$3" "$2"
    else curl --fail --silent --show-error --max-time 60 -X "$1" -H "$AUTH" "$2"; fi
  elif [ "$1" = GET ]; then timeout 60 wget -q -O - --header "$AUTH" "$2"
  elif [ -n "${3:-}" ]; then timeout 60 wget -q -O - --header "$AUTH" --header 'Content-Type: application/json' --post-file "$3" "$2"
  # busybox wget labels a POST form-encoded unless told otherwise; the engine takes JSON.
  else timeout 60 wget -q -O - --header "$AUTH" --header 'Content-Type: application/json' --post-data '{}' "$2"; fi
}
field() { sed -n "s/.*\"$1\":\"\\{0,1\\}\\([a-z_]*\\)\"\\{0,1\\}.*/\\1/p"; }

can_drain() { command -v kubectl >/dev/null 2>&1 && [ -r "$KUBECONFIG_FILE" ]; }
kube() { kubectl --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# reason message: tells the engine this machine does not restart, and why.
refuse() {
  body="$(mktemp)"
  printf '{"reason":"%s","message":"%s"}' "$1" "$(printf '%s' "$2" | tr -d '"\\\000-\037' | cut -c 1-1500)" > "$body"
  call POST "$SLIPWAY_URL/lifecycle/rolling/refusal" "$body" >/dev/null || say "could not tell the engine ($1)"
  rm -f "$body"
  say "not restarting: $2"
}

report="$(call POST "$SLIPWAY_URL/lifecycle/ignition" "$RUNNING")" || { say "cannot report the running config"; exit 1; }
state="$(echo "$report" | field state)"
rolling="$(call GET "$SLIPWAY_URL/lifecycle/rolling")" || { say "cannot read the rolling policy"; exit 1; }
mode="$(echo "$rolling" | field mode)"
holding="$(echo "$rolling" | field holding)"
drain="$(echo "$rolling" | field drain)"
[ "$mode" = machine ] || exit 0

if [ "$state" = up_to_date ]; then
  if [ "$holding" = true ]; then
    if [ "$drain" = skip ]; then released="reboot slot released (no drain: slipway.io/rolling-drain=skip)"
    elif kube uncordon "$NODE"; then released="node uncordoned, reboot slot released"
    else say "up to date, but uncordoning $NODE failed: keeping the slot, trying again next time"; exit 1; fi
    # The engine keeps the slot of a control-plane member whose etcd has not caught up yet (409).
    call POST "$SLIPWAY_URL/lifecycle/rolling/unlock" >/dev/null && say "up to date: $released" || say "up to date: the engine keeps the slot for now; trying again next time"
  fi
  exit 0
fi
[ "$state" = outdated ] || { say "config state '$state': nothing to do"; exit 0; }

# Checked before taking a slot: a machine that cannot drain must not hold one.
if [ "$drain" != skip ] && ! can_drain; then
  refuse no_kubeconfig "outdated, but $NODE must be drained first and there is no kubectl or no readable $KUBECONFIG_FILE"
  exit 1
fi
call POST "$SLIPWAY_URL/lifecycle/rolling/lock" >/dev/null || { say "outdated, no reboot slot free: trying again next time"; exit 0; }
say "outdated: took a reboot slot"
release() { # reason message
  [ "$drain" = skip ] || kube uncordon "$NODE" >/dev/null 2>&1
  call POST "$SLIPWAY_URL/lifecycle/rolling/unlock" >/dev/null
  refuse "$1" "$2 (slot released)"
}
if [ "$drain" != skip ]; then
  drained="$(kube drain "$NODE" --ignore-daemonsets --timeout=600s 2>&1)" || { release drain_failed "kubectl drain $NODE failed: $(echo "$drained" | tail -n 3 | tr '\n' ' ')"; exit 1; }
fi
mkdir -p "$(dirname "$NEXT")"
if ! call GET "$SLIPWAY_CONFIG_URL" > "$NEXT.tmp" || ! mv -f "$NEXT.tmp" "$NEXT"; then
  release config_unavailable "cannot fetch the new config from $SLIPWAY_CONFIG_URL"
  exit 1
fi
say "restarting into the new config ($STRATEGY)"
exec "$APPLY" "$NEXT" "$STRATEGY"
