package datalocality

import (
	"slices"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
)

// watchDatasets brings the pods that wait for locality back to the active
// queue when a Dataset they read is created, changed or deleted, once the
// plugin's own Dataset informer holds the change. The scheduler's Dataset
// event, which isSchedulableAfterDatasetChange answers, comes through
// another informer than the lister PreFilter reads: a pod tried again on it
// may still find the Dataset as it was and wait on, until its next level
// opens (up to its whole locality wait) or the scheduler's periodic flush.
func (pl *DataLocality) watchDatasets(informer cache.SharedIndexInformer) {
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    pl.onDataset,
		UpdateFunc: pl.onDatasetUpdate,
		DeleteFunc: pl.onDataset,
	}); err != nil {
		pl.logger.Error(err, "Dataset changes will requeue waiting pods only through the scheduler's own events")
	}
}

// onDatasetUpdate is onDataset for a change of spec; status and metadata
// changes (labels, annotations) move no data.
func (pl *DataLocality) onDatasetUpdate(oldObj, newObj interface{}) {
	o, okOld := oldObj.(*locusv1alpha1.Dataset)
	n, okNew := newObj.(*locusv1alpha1.Dataset)
	if okOld && okNew && apiequality.Semantic.DeepEqual(o.Spec, n.Spec) {
		return
	}
	pl.onDataset(newObj)
}

// onDataset activates the pending pods of the Dataset's namespace that read
// it and wait for locality.
func (pl *DataLocality) onDataset(obj interface{}) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	ds, ok := obj.(*locusv1alpha1.Dataset)
	if !ok {
		return
	}
	pods, err := pl.pods.Pods(ds.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	waiting := map[string]*v1.Pod{}
	for _, p := range pods {
		if p.Spec.NodeName != "" || !slices.Contains(DatasetNames(p), ds.Name) {
			continue
		}
		if d, _ := pl.tracker.waiting(p.UID); d != nil {
			waiting[p.Namespace+"/"+p.Name] = p
		}
	}
	if len(waiting) > 0 {
		pl.handle.Activate(pl.logger, waiting)
	}
}
