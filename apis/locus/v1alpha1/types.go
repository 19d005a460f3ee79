package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Dataset says where a data set lives: the nodes, zones and regions where a
// pod can read it, and how many bytes it reads there. Pods name the Datasets
// they read, in their own namespace, with the locus.dev/datasets annotation;
// the DataLocality plugin places them near the data.
//
// A cache system or a pipeline step that writes data keeps its Dataset
// current; locus only reads it.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,categories=locus
// +kubebuilder:printcolumn:name="URI",type=string,JSONPath=`.spec.uri`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Dataset struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec DatasetSpec `json:"spec"`
}

// DatasetSpec is where a data set lives.
type DatasetSpec struct {
	// URI names the data for people and tools (for example
	// s3://warehouse/sales/2026/). The scheduler does not read it.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	URI string `json:"uri,omitempty"`

	// Locations lists where the data can be read. Each entry names exactly
	// one of node, zone or region: a local cache on a node, a zonal file
	// system, a regional object store bucket. Declare every level at which
	// a copy is reachable; an entry counts only for its own level.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=512
	Locations []DatasetLocation `json:"locations,omitempty"`
}

// DatasetLocation is one place where a data set can be read.
//
// +kubebuilder:validation:XValidation:rule="[has(self.node), has(self.zone), has(self.region)].filter(x, x).size() == 1",message="a location names exactly one of node, zone or region"
type DatasetLocation struct {
	// Node is the name of a node that holds the data (for example a local
	// SSD cache).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Node string `json:"node,omitempty"`

	// Zone is a zone (the topology.kubernetes.io/zone label of nodes) where
	// the data can be read at zone-local cost (for example a zonal file
	// system).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Zone string `json:"zone,omitempty"`

	// Region is a region (the topology.kubernetes.io/region label of nodes)
	// where the data can be read at region-local cost (for example an object
	// store bucket).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Region string `json:"region,omitempty"`

	// Bytes is how much of the data a pod reads at this location.
	// +required
	Bytes resource.Quantity `json:"bytes"`
}

// DatasetList is a list of Datasets.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type DatasetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []Dataset `json:"items"`
}
