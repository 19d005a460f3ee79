package explain

import (
	"context"
	"fmt"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/explain/report"
	"locus.dev/locus/pkg/generated/clientset/versioned"
)

// State is a copy of the cluster objects that scheduling reads. An Engine
// runs on it in memory; nothing done to it reaches the cluster.
type State struct {
	Nodes      []*v1.Node
	Pods       []*v1.Pod
	Namespaces []*v1.Namespace
	// Other holds the rest of what kube-scheduler's in-tree plugins read:
	// volumes and storage classes, CSI objects, services and workload
	// controllers (default topology spreading), DRA objects.
	Other []runtime.Object

	Datasets      []*locusv1alpha1.Dataset
	ElasticQuotas []*schedv1alpha1.ElasticQuota
	PodGroups     []*schedv1alpha1.PodGroup
	// PriorityClasses resolve spec.priorityClassName of simulated pods, as
	// the Priority admission plugin does for created ones.
	PriorityClasses []*schedulingv1.PriorityClass

	// Unavailable are the kinds that could not be read (not served by this
	// cluster, or not allowed to this user), and what that costs; the
	// engine runs without them. Warnings say the same, one line each.
	Unavailable []report.Unavailable
	Warnings    []string
}

// LoadOptions tune Load.
type LoadOptions struct {
	// Namespaces are where the caller's pods live. When listing a
	// namespaced kind in all namespaces is forbidden (a user who may read
	// only their own namespace), Load lists it in each of these instead,
	// and when listing Namespaces is forbidden, it reads these one by one.
	Namespaces []string
}

// Load reads the state from a cluster with list calls only; see LoadWith.
func Load(ctx context.Context, cfg *rest.Config) (*State, error) {
	return LoadWith(ctx, cfg, LoadOptions{})
}

// loadList is one kind that Load reads.
type loadList struct {
	// resource names the kind in Unavailable: "nodes", "datasets.locus.dev".
	resource string
	// namespaced kinds are listed per namespace when the cluster-wide list
	// is forbidden.
	namespaced bool
	// required kinds make Load fail on any error but Forbidden.
	required bool
	// impact says what is missing without the kind; partial, what is
	// missing when it was read in some namespaces only.
	impact, partial string
	// list lists the kind in a namespace ("" for all) into the state.
	list func(namespace string) error
}

// Impacts of the kinds that could not be read.
const (
	// ImpactNodes is what explain and simulate lack without the nodes.
	ImpactNodes     = "node-level reasons unavailable"
	impactPods      = "other namespaces' pods are not counted: nodes may look roomier, and pod (anti-)affinity and topology spreading see only the pods read"
	impactNamespace = "namespace annotations (locus.dev/compliance, locus.dev/data-residency) and labels are not applied"
	impactQuotas    = "BatchQuota sees only the ElasticQuotas read: a namespace whose quota was not read is treated as unlimited, and borrowing from other namespaces' unused min is not counted"
	impactOther     = "evaluating without them"
	impactOtherNS   = "evaluating without those of other namespaces"
)

// LoadWith reads the state from a cluster with list calls only. Pods that
// have finished (Succeeded, Failed) are left out, as kube-scheduler leaves
// them out. Custom resources are read as JSON.
//
// What the user may not read does not fail the load: a kind whose listing
// is forbidden is listed in opts.Namespaces instead, or left out, and
// State.Unavailable says what is missing and what that costs. Only errors
// other than Forbidden on nodes, pods and namespaces fail it (and, for the
// other kinds, errors other than Forbidden, NotFound and no such kind).
func LoadWith(ctx context.Context, cfg *rest.Config, opts LoadOptions) (*State, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	jsonCfg := rest.CopyConfig(cfg)
	jsonCfg.ContentType, jsonCfg.AcceptContentTypes = runtime.ContentTypeJSON, runtime.ContentTypeJSON
	locus, err := versioned.NewForConfig(jsonCfg)
	if err != nil {
		return nil, err
	}
	sched, err := schedclient.NewForConfig(jsonCfg)
	if err != nil {
		return nil, err
	}

	s := &State{}
	// Served from the API server's watch cache, as informers list.
	lo := metav1.ListOptions{ResourceVersion: "0"}
	core, storage := client.CoreV1(), client.StorageV1()
	other := func(l runtime.Object, err error) error {
		if err != nil {
			return err
		}
		items, err := meta.ExtractList(l)
		if err != nil {
			return err
		}
		s.Other = append(s.Other, items...)
		return nil
	}
	lists := []loadList{
		{resource: "nodes", required: true, impact: ImpactNodes, list: func(string) error {
			l, err := core.Nodes().List(ctx, lo)
			if err == nil {
				for i := range l.Items {
					s.Nodes = append(s.Nodes, &l.Items[i])
				}
			}
			return err
		}},
		{resource: "pods", required: true, namespaced: true, impact: impactPods, partial: impactPods, list: func(ns string) error {
			l, err := core.Pods(ns).List(ctx, lo)
			if err == nil {
				for i := range l.Items {
					if p := &l.Items[i]; p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
						s.Pods = append(s.Pods, p)
					}
				}
			}
			return err
		}},
		{resource: "persistentvolumeclaims", namespaced: true, list: func(ns string) error { return other(core.PersistentVolumeClaims(ns).List(ctx, lo)) }},
		{resource: "persistentvolumes", list: func(string) error { return other(core.PersistentVolumes().List(ctx, lo)) }},
		{resource: "services", namespaced: true, list: func(ns string) error { return other(core.Services(ns).List(ctx, lo)) }},
		{resource: "replicationcontrollers", namespaced: true, list: func(ns string) error { return other(core.ReplicationControllers(ns).List(ctx, lo)) }},
		{resource: "replicasets.apps", namespaced: true, list: func(ns string) error { return other(client.AppsV1().ReplicaSets(ns).List(ctx, lo)) }},
		{resource: "statefulsets.apps", namespaced: true, list: func(ns string) error { return other(client.AppsV1().StatefulSets(ns).List(ctx, lo)) }},
		{resource: "storageclasses.storage.k8s.io", list: func(string) error { return other(storage.StorageClasses().List(ctx, lo)) }},
		{resource: "csinodes.storage.k8s.io", list: func(string) error { return other(storage.CSINodes().List(ctx, lo)) }},
		{resource: "csidrivers.storage.k8s.io", list: func(string) error { return other(storage.CSIDrivers().List(ctx, lo)) }},
		{resource: "csistoragecapacities.storage.k8s.io", namespaced: true, list: func(ns string) error {
			return other(storage.CSIStorageCapacities(ns).List(ctx, lo))
		}},
		{resource: "volumeattachments.storage.k8s.io", list: func(string) error { return other(storage.VolumeAttachments().List(ctx, lo)) }},
		{resource: "resourceclaims.resource.k8s.io", namespaced: true, list: func(ns string) error {
			return other(client.ResourceV1().ResourceClaims(ns).List(ctx, lo))
		}},
		{resource: "resourceslices.resource.k8s.io", list: func(string) error { return other(client.ResourceV1().ResourceSlices().List(ctx, lo)) }},
		{resource: "deviceclasses.resource.k8s.io", list: func(string) error { return other(client.ResourceV1().DeviceClasses().List(ctx, lo)) }},
		{resource: "priorityclasses.scheduling.k8s.io", list: func(string) error {
			l, err := client.SchedulingV1().PriorityClasses().List(ctx, lo)
			if err == nil {
				for i := range l.Items {
					s.PriorityClasses = append(s.PriorityClasses, &l.Items[i])
				}
			}
			return err
		}},
		{resource: "datasets.locus.dev", namespaced: true, list: func(ns string) error {
			l, err := locus.LocusV1alpha1().Datasets(ns).List(ctx, lo)
			if err == nil {
				for i := range l.Items {
					s.Datasets = append(s.Datasets, &l.Items[i])
				}
			}
			return err
		}},
		{resource: "elasticquotas.scheduling.x-k8s.io", namespaced: true, impact: impactQuotas, partial: impactQuotas, list: func(ns string) error {
			l, err := sched.SchedulingV1alpha1().ElasticQuotas(ns).List(ctx, lo)
			if err == nil {
				for i := range l.Items {
					s.ElasticQuotas = append(s.ElasticQuotas, &l.Items[i])
				}
			}
			return err
		}},
		{resource: "podgroups.scheduling.x-k8s.io", namespaced: true, list: func(ns string) error {
			l, err := sched.SchedulingV1alpha1().PodGroups(ns).List(ctx, lo)
			if err == nil {
				for i := range l.Items {
					s.PodGroups = append(s.PodGroups, &l.Items[i])
				}
			}
			return err
		}},
	}
	namespaces := uniqueNamespaces(opts.Namespaces)
	for _, l := range lists {
		if err := s.load(l, namespaces); err != nil {
			return nil, err
		}
	}
	if err := s.loadNamespaces(ctx, client, lo, namespaces); err != nil {
		return nil, err
	}
	s.Warnings = UnavailableMessages(s.Unavailable)
	return s, nil
}

// load lists one kind in all namespaces, else, when that is forbidden, in
// each of namespaces, and records what it could not read.
func (s *State) load(l loadList, namespaces []string) error {
	err := l.list(metav1.NamespaceAll)
	if err == nil {
		return nil
	}
	if !tolerated(err, l.required) {
		return fmt.Errorf("listing %s: %w", l.resource, err)
	}
	u := report.Unavailable{Resource: l.resource, Reason: apierrors.ReasonForError(err), Message: err.Error(), Impact: l.impact}
	if u.Impact == "" {
		u.Impact = impactOther
	}
	if l.namespaced && apierrors.IsForbidden(err) {
		for _, ns := range namespaces {
			err := l.list(ns)
			if err == nil {
				u.ReadNamespaces = append(u.ReadNamespaces, ns)
				continue
			}
			if !tolerated(err, l.required) {
				return fmt.Errorf("listing %s in namespace %s: %w", l.resource, ns, err)
			}
		}
		if len(u.ReadNamespaces) > 0 {
			u.Impact = l.partial
			if u.Impact == "" {
				u.Impact = impactOtherNS
			}
		}
	}
	if u.Reason == metav1.StatusReasonUnknown && meta.IsNoMatchError(err) {
		u.Reason = metav1.StatusReasonNotFound
	}
	s.Unavailable = append(s.Unavailable, u)
	return nil
}

// tolerated: errors that leave a kind out rather than fail the load.
func tolerated(err error, required bool) bool {
	if apierrors.IsForbidden(err) {
		return true
	}
	return !required && (apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) || meta.IsNoMatchError(err))
}

// loadNamespaces lists the namespaces, else reads the caller's one by one;
// one that cannot be read stands in the state as a bare namespace of that
// name (the plugins need it to exist), without its annotations and labels.
func (s *State) loadNamespaces(ctx context.Context, client kubernetes.Interface, lo metav1.ListOptions, namespaces []string) error {
	l, err := client.CoreV1().Namespaces().List(ctx, lo)
	if err == nil {
		for i := range l.Items {
			s.Namespaces = append(s.Namespaces, &l.Items[i])
		}
		return nil
	}
	if !apierrors.IsForbidden(err) {
		return fmt.Errorf("listing namespaces: %w", err)
	}
	u := report.Unavailable{Resource: "namespaces", Reason: metav1.StatusReasonForbidden, Message: err.Error(), Impact: impactNamespace}
	var bare []string
	for _, name := range namespaces {
		ns, err := client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			s.Namespaces = append(s.Namespaces, ns)
			u.ReadNamespaces = append(u.ReadNamespaces, name)
			continue
		case apierrors.IsForbidden(err), apierrors.IsNotFound(err):
		default:
			return fmt.Errorf("reading namespace %s: %w", name, err)
		}
		s.Namespaces = append(s.Namespaces, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
		bare = append(bare, name)
	}
	switch {
	case len(bare) > 0:
		u.Impact = fmt.Sprintf("the annotations and labels of namespace %s are not applied (locus.dev/compliance, locus.dev/data-residency)", strings.Join(bare, ", "))
	case len(u.ReadNamespaces) > 0:
		u.Impact = "evaluating without the other namespaces: namespace selectors see only those read"
	}
	s.Unavailable = append(s.Unavailable, u)
	return nil
}

func uniqueNamespaces(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, ns := range list {
		if ns != "" && !seen[ns] {
			seen[ns] = true
			out = append(out, ns)
		}
	}
	sort.Strings(out)
	return out
}

// UnavailableMessage says in one line what could not be read, and what that
// costs: "could not list nodes: forbidden; node-level reasons unavailable".
func UnavailableMessage(u report.Unavailable) string {
	what := u.Resource
	if len(u.ReadNamespaces) > 0 {
		what += " in all namespaces"
	}
	msg := fmt.Sprintf("could not list %s: %s", what, reasonWords(u.Reason, u.Message))
	if len(u.ReadNamespaces) > 0 {
		msg += fmt.Sprintf("; read namespace %s only", strings.Join(u.ReadNamespaces, ", "))
	}
	return msg + "; " + u.Impact
}

// UnavailableMessages says what could not be read, one line per reason and
// impact: kinds that were all forbidden for the same cost share a line.
func UnavailableMessages(us []report.Unavailable) []string {
	var keys []string
	groups := map[string]*report.Unavailable{}
	for _, u := range us {
		k := fmt.Sprintf("%s|%s|%s|%v", u.Reason, reasonWords(u.Reason, u.Message), u.Impact, u.ReadNamespaces)
		if g, ok := groups[k]; ok {
			g.Resource += ", " + u.Resource
			continue
		}
		u := u
		groups[k] = &u
		keys = append(keys, k)
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, UnavailableMessage(*groups[k]))
	}
	return out
}

func reasonWords(reason metav1.StatusReason, message string) string {
	switch reason {
	case metav1.StatusReasonForbidden:
		return "forbidden"
	case metav1.StatusReasonNotFound:
		return "not served by this cluster"
	case metav1.StatusReasonMethodNotAllowed:
		return "not allowed"
	}
	return message
}

// NodesUnavailable returns why the nodes could not be read, or nil.
func (s *State) NodesUnavailable() *report.Unavailable {
	for i := range s.Unavailable {
		if s.Unavailable[i].Resource == "nodes" {
			return &s.Unavailable[i]
		}
	}
	return nil
}

// Pod returns the pod of that name, or nil.
func (s *State) Pod(namespace, name string) *v1.Pod {
	for _, p := range s.Pods {
		if p.Namespace == namespace && p.Name == name {
			return p
		}
	}
	return nil
}

// Unbind replaces a pod by an unbound copy and returns the copy: the state
// as if the pod had not been scheduled yet, so that it counts against
// neither its node's resources nor its quota.
func (s *State) Unbind(pod *v1.Pod) *v1.Pod {
	c := pod.DeepCopy()
	c.Spec.NodeName = ""
	c.Status.NominatedNodeName = ""
	for i, p := range s.Pods {
		if p.UID == pod.UID && p.Namespace == pod.Namespace && p.Name == pod.Name {
			s.Pods[i] = c
			return c
		}
	}
	s.Pods = append(s.Pods, c)
	return c
}

// Apply adds an object to the state, or replaces the one of the same kind,
// namespace and name: manifests layered over the cluster. It takes Pods,
// Nodes, Namespaces, Datasets, ElasticQuotas and PodGroups.
func (s *State) Apply(obj runtime.Object) error {
	switch o := obj.(type) {
	case *v1.Pod:
		s.Pods = replace(s.Pods, o)
	case *v1.Node:
		s.Nodes = replace(s.Nodes, o)
	case *v1.Namespace:
		s.Namespaces = replace(s.Namespaces, o)
	case *locusv1alpha1.Dataset:
		s.Datasets = replace(s.Datasets, o)
	case *schedv1alpha1.ElasticQuota:
		// One quota per namespace: a quota in the file stands for the
		// namespace's quota, whatever its name.
		out := s.ElasticQuotas[:0:0]
		for _, q := range s.ElasticQuotas {
			if q.Namespace != o.Namespace {
				out = append(out, q)
			}
		}
		s.ElasticQuotas = append(out, o)
	case *schedv1alpha1.PodGroup:
		s.PodGroups = replace(s.PodGroups, o)
	default:
		return fmt.Errorf("%T is not supported here: use Pods, Nodes, Namespaces, Datasets, ElasticQuotas or PodGroups", obj)
	}
	return nil
}

func replace[T metav1.Object](list []T, obj T) []T {
	for i, o := range list {
		if o.GetNamespace() == obj.GetNamespace() && o.GetName() == obj.GetName() {
			list[i] = obj
			return list
		}
	}
	return append(list, obj)
}

// priorityOf resolves a pod's priority class as the Priority admission
// plugin would: the named class, else the global default, else zero.
func (s *State) priorityOf(pod *v1.Pod) (int32, error) {
	if pod.Spec.Priority != nil {
		return *pod.Spec.Priority, nil
	}
	name := pod.Spec.PriorityClassName
	for _, pc := range s.PriorityClasses {
		if (name != "" && pc.Name == name) || (name == "" && pc.GlobalDefault) {
			return pc.Value, nil
		}
	}
	if name == "" {
		return 0, nil
	}
	return 0, fmt.Errorf("pod %s/%s: no PriorityClass %q", pod.Namespace, pod.Name, name)
}
