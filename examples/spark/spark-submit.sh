#!/bin/sh
# Runs the nightly aggregation on Kubernetes in cluster mode, placed by
# locus-scheduler as one gang under the spark namespace's ElasticQuota
# (README, "Spark"). Needs Spark 3.3 or newer (spark.kubernetes.scheduler.name)
# and kubectl with rights on PodGroups in the spark namespace.
#
#   K8S_API=https://kube-api.example.com:6443 \
#   APP_JAR=s3a://jobs/nightly-aggregation.jar APP_CLASS=com.example.NightlyAggregation \
#   examples/spark/spark-submit.sh
#
# The requests that Spark gives the pods follow from the driver and executor
# settings below; examples/spark-gang.yaml's PodGroup minResources is their
# sum (1 + 4 x 2 CPU, 2Gi + 4 x 8Gi), and must change with them.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${K8S_API:?set K8S_API to the API server URL, e.g. https://kube-api.example.com:6443}"
: "${APP_JAR:?set APP_JAR to the application jar}"
: "${APP_CLASS:?set APP_CLASS to the application main class}"

# A PodGroup deleted and created again is a new gang. Recreate it for each
# run, before the driver exists: pods created before their PodGroup belong
# to the earlier run and would be placed alone.
kubectl delete podgroup nightly-aggregation -n spark --ignore-not-found
kubectl apply -f "$here/../spark-gang.yaml"

exec spark-submit \
  --master "k8s://$K8S_API" \
  --deploy-mode cluster \
  --name nightly-aggregation \
  --class "$APP_CLASS" \
  --conf spark.kubernetes.namespace=spark \
  --conf spark.kubernetes.container.image=apache/spark:3.5.1 \
  --conf spark.kubernetes.authenticate.driver.serviceAccountName=spark-driver \
  --conf spark.kubernetes.scheduler.name=locus-scheduler \
  --conf spark.kubernetes.driver.podTemplateFile="$here/driver-pod-template.yaml" \
  --conf spark.kubernetes.executor.podTemplateFile="$here/executor-pod-template.yaml" \
  --conf spark.driver.cores=1 \
  --conf spark.driver.memory=1536m \
  --conf spark.driver.memoryOverhead=512m \
  --conf spark.executor.instances=4 \
  --conf spark.executor.cores=2 \
  --conf spark.executor.memory=7g \
  --conf spark.executor.memoryOverhead=1g \
  --conf spark.dynamicAllocation.enabled=false \
  "$APP_JAR"
