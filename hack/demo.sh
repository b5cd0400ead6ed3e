#!/usr/bin/env bash
# The demo on the local cluster: install the CRDs, apply examples/, run the operator, show `kubectl get mlops`.
set -euo pipefail
state_dir=${1:-.localcluster}
bin_dir=$(bash "$(dirname "$0")/build-binaries.sh")
export KUBECONFIG="$PWD/$state_dir/kubeconfig"
kubectl() { "$bin_dir/kubectl" "$@"; }

echo "==> installing the CRDs"
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established crd -l app.kubernetes.io/part-of=mlops-operator --timeout=60s
echo "==> applying examples/"
kubectl apply -f examples/iris/
echo "==> running the operator until every object has a Ready condition"
mlops-operator run --namespace default --liveness http://127.0.0.1:18081/healthz > "$state_dir/logs/operator-demo.log" 2>&1 &
operator_pid=$!
trap 'kill $operator_pid 2>/dev/null || true; wait $operator_pid 2>/dev/null || true' EXIT
for ref in dataset/iris trainingrun/iris-train modelversion/iris-classifier-external-1 mldeploy/iris; do
  kubectl wait --for=jsonpath='{.status.observedGeneration}'=1 "$ref" --timeout=60s >/dev/null
done
echo "==> kubectl get mlops"
kubectl get mlops
echo
echo "The cluster keeps running: export KUBECONFIG=$KUBECONFIG and use $bin_dir/kubectl;"
echo "stop it with 'make cluster-down'."
