#!/usr/bin/env bash
# What a user would otherwise script to give one IAM user access on every cluster: per cluster,
# a token from the AWS CLI, then kubectl get / edit / replace of kube-system/aws-auth. With
# PARALLEL=N the clusters run N at a time (xargs -P), as a careful user would run them.
# Environment: CLUSTERS (a file of "name endpoint ca-file" lines), REGION, ENTRY (the mapUsers
# entry to append, YAML), WORK (a scratch directory), PARALLEL (optional).
set -euo pipefail
one() {
  local name=$1 endpoint=$2 ca=$3 token
  token=$(aws eks get-token --cluster-name "$name" --region "$REGION" \
    --query status.token --output text)
  local kube=(kubectl --server "$endpoint" --certificate-authority "$ca" --token "$token" -n kube-system)
  "${kube[@]}" get configmap aws-auth -o json >"$WORK/$name.json"
  jq --arg entry "$ENTRY" '.data.mapUsers = ((.data.mapUsers // "") + $entry)' \
    "$WORK/$name.json" >"$WORK/$name.edited.json"
  "${kube[@]}" replace -f "$WORK/$name.edited.json" >/dev/null
}
if [ -n "${PARALLEL:-}" ]; then
  export -f one
  export REGION ENTRY WORK
  xargs -P "$PARALLEL" -L 1 bash -c 'one "$@"' _ <"$CLUSTERS"
else
  while read -r name endpoint ca; do one "$name" "$endpoint" "$ca"; done <"$CLUSTERS"
fi
