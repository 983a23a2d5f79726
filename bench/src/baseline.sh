#!/usr/bin/env bash
# What a user would otherwise script to give one IAM user access on every cluster: per cluster,
# a token from the AWS CLI, then kubectl get / edit / replace of kube-system/aws-auth.
# Environment: CLUSTERS (a file of "name endpoint ca-file" lines), REGION, ENTRY (the mapUsers
# entry to append, YAML), WORK (a scratch directory).
set -euo pipefail
while read -r name endpoint ca; do
  token=$(aws eks get-token --cluster-name "$name" --region "$REGION" \
    --query status.token --output text)
  kube=(kubectl --server "$endpoint" --certificate-authority "$ca" --token "$token" -n kube-system)
  "${kube[@]}" get configmap aws-auth -o json >"$WORK/aws-auth.json"
  jq --arg entry "$ENTRY" '.data.mapUsers = ((.data.mapUsers // "") + $entry)' \
    "$WORK/aws-auth.json" >"$WORK/aws-auth.edited.json"
  "${kube[@]}" replace -f "$WORK/aws-auth.edited.json" >/dev/null
done <"$CLUSTERS"
