// Package crdconfig adapts a rest.Config for clients of custom resources.
package crdconfig

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
)

// JSON returns a copy of cfg that speaks JSON: custom resources (Datasets,
// ElasticQuotas, PodGroups) have no protobuf encoding, while kube-scheduler
// and the test API server default their clients to protobuf.
func JSON(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.ContentType, c.AcceptContentTypes = runtime.ContentTypeJSON, runtime.ContentTypeJSON
	return c
}
