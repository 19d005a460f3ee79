package bench

import (
	"context"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/testenv"
)

const (
	// The one standard that the compliance workload needs, and the label
	// that certifies a node for it (the default certificationLabelPrefix).
	standard           = "pci-dss"
	certificationLabel = "node-restriction.kubernetes.io/compliance." + standard
	// residencyGroup is a key of the residency args in
	// manifests/base/scheduler-config.yaml that holds both regions.
	residencyGroup = "us"

	podCPU    = "100m"
	podMemory = "128Mi"

	// datasets per run of the compliance and locality workload.
	datasetCount = 20
	// quotaNamespaces is how many namespaces (one ElasticQuota each) the gang
	// workload spreads over.
	quotaNamespaces = 4
)

// residencyRegions are the regions of residencyGroup in
// manifests/base/scheduler-config.yaml.
var residencyRegions = []string{"us-east-1", "us-east-2", "us-west-2"}

// workload builds the objects and pods of one measurement.
type workload struct {
	name string
	// prepare creates what the pods need (namespaces, Datasets, quotas,
	// PodGroups) and returns the pods, not yet created, and the namespaces
	// they live in.
	prepare func(ctx context.Context, c *cluster, m *measurement) ([]*v1.Pod, error)
	// cleanup deletes what prepare created, other than the pods.
	cleanup func(ctx context.Context, c *cluster, m *measurement) error
}

// measurement is one arm in one round.
type measurement struct {
	run           string // unique; also the name (prefix) of its namespaces
	schedulerName string
	pods          int
	gangSize      int
	namespaces    []string
}

func (m *measurement) pod(ns string, i int) *v1.Pod {
	return testenv.NewPod(testenv.PodSpec{
		Namespace: ns, Name: fmt.Sprintf("pod-%05d", i), SchedulerName: m.schedulerName,
		Labels: map[string]string{runLabel: m.run}, CPU: podCPU, Memory: podMemory,
	})
}

func (m *measurement) namespace(ctx context.Context, c *cluster, name string) (string, error) {
	if err := testenv.CreateNamespace(ctx, c.client, name, nil); err != nil {
		return "", err
	}
	m.namespaces = append(m.namespaces, name)
	return name, nil
}

// plainWorkload: pods that use no locus feature, only CPU and memory requests.
var plainWorkload = workload{
	name: "plain",
	prepare: func(ctx context.Context, c *cluster, m *measurement) ([]*v1.Pod, error) {
		ns, err := m.namespace(ctx, c, m.run)
		if err != nil {
			return nil, err
		}
		pods := make([]*v1.Pod, m.pods)
		for i := range pods {
			pods[i] = m.pod(ns, i)
		}
		return pods, nil
	},
	cleanup: func(context.Context, *cluster, *measurement) error { return nil },
}

// featuresWorkload: every pod reads one or two of datasetCount Datasets
// (each cached on two nodes, held in a zone and in its region); every other
// pod is regulated: it needs pci-dss and data residency "us".
var featuresWorkload = workload{
	name: "compliance+locality",
	prepare: func(ctx context.Context, c *cluster, m *measurement) ([]*v1.Pod, error) {
		return prepareFeatures(ctx, c, m, false)
	},
	cleanup: cleanupDatasets,
}

// affinityWorkload is featuresWorkload with its constraints written by hand
// as kube-scheduler users do without locus: required node affinity on the
// certification label and the residency regions, preferred node affinity
// toward the nodes, zone and region that hold each pod's data (weighted as
// DataLocality weighs bytes: node 1, zone 0.5, region 0.1). The Datasets
// are still created, as the same objects would exist in the cluster.
var affinityWorkload = workload{
	name: "compl+locality by hand",
	prepare: func(ctx context.Context, c *cluster, m *measurement) ([]*v1.Pod, error) {
		return prepareFeatures(ctx, c, m, true)
	},
	cleanup: cleanupDatasets,
}

func prepareFeatures(ctx context.Context, c *cluster, m *measurement, byHand bool) ([]*v1.Pod, error) {
	ns, err := m.namespace(ctx, c, m.run)
	if err != nil {
		return nil, err
	}
	datasets := make([]*locusv1alpha1.Dataset, datasetCount)
	for d := range datasets {
		datasets[d] = dataset(ns, d, c.nodes)
		if _, err := c.locus.LocusV1alpha1().Datasets(ns).Create(ctx, datasets[d], metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("creating Dataset: %w", err)
		}
	}
	pods := make([]*v1.Pod, m.pods)
	for i := range pods {
		p := m.pod(ns, i)
		reads := []*locusv1alpha1.Dataset{datasets[i%datasetCount]}
		if i%3 == 0 {
			reads = append(reads, datasets[(i+1)%datasetCount])
		}
		regulated := i%2 == 0
		if byHand {
			p.Spec.Affinity = handWrittenAffinity(reads, regulated)
		} else {
			names := make([]string, len(reads))
			for j, d := range reads {
				names[j] = d.Name
			}
			p.Annotations = map[string]string{locusv1alpha1.AnnotationDatasets: strings.Join(names, ",")}
			if regulated {
				p.Annotations[locusv1alpha1.AnnotationCompliance] = standard
				p.Annotations[locusv1alpha1.AnnotationDataResidency] = residencyGroup
			}
		}
		pods[i] = p
	}
	return pods, nil
}

// handWrittenAffinity is what a user writes on the default scheduler for a
// pod that reads datasets and, if regulated, needs pci-dss inside the "us"
// residency group.
func handWrittenAffinity(reads []*locusv1alpha1.Dataset, regulated bool) *v1.Affinity {
	na := &v1.NodeAffinity{}
	if regulated {
		na.RequiredDuringSchedulingIgnoredDuringExecution = &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
			MatchExpressions: []v1.NodeSelectorRequirement{
				{Key: certificationLabel, Operator: v1.NodeSelectorOpIn, Values: []string{"true"}},
				{Key: v1.LabelTopologyRegion, Operator: v1.NodeSelectorOpIn, Values: residencyRegions},
			},
		}}}
	}
	for _, d := range reads {
		for _, loc := range d.Spec.Locations {
			var term v1.PreferredSchedulingTerm
			switch {
			case loc.Node != "":
				term = preferred(100, v1.LabelHostname, loc.Node)
			case loc.Zone != "":
				term = preferred(50, v1.LabelTopologyZone, loc.Zone)
			default:
				term = preferred(10, v1.LabelTopologyRegion, loc.Region)
			}
			na.PreferredDuringSchedulingIgnoredDuringExecution = append(na.PreferredDuringSchedulingIgnoredDuringExecution, term)
		}
	}
	return &v1.Affinity{NodeAffinity: na}
}

func preferred(weight int32, key, value string) v1.PreferredSchedulingTerm {
	return v1.PreferredSchedulingTerm{Weight: weight, Preference: v1.NodeSelectorTerm{
		MatchExpressions: []v1.NodeSelectorRequirement{{Key: key, Operator: v1.NodeSelectorOpIn, Values: []string{value}}},
	}}
}

func cleanupDatasets(ctx context.Context, c *cluster, m *measurement) error {
	for _, ns := range m.namespaces {
		if err := c.locus.LocusV1alpha1().Datasets(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			return fmt.Errorf("deleting Datasets in %s: %w", ns, err)
		}
	}
	return nil
}

func datasetName(d int) string { return fmt.Sprintf("ds-%02d", d) }

// dataset d is cached on two nodes, sits in one zone of us-east-1 and in
// the region's object store.
func dataset(ns string, d int, nodes []string) *locusv1alpha1.Dataset {
	loc := func(node, zone, region, bytes string) locusv1alpha1.DatasetLocation {
		return locusv1alpha1.DatasetLocation{Node: node, Zone: zone, Region: region, Bytes: resource.MustParse(bytes)}
	}
	n := len(nodes)
	return &locusv1alpha1.Dataset{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: datasetName(d)},
		Spec: locusv1alpha1.DatasetSpec{
			URI: "s3://warehouse/" + datasetName(d) + "/",
			Locations: []locusv1alpha1.DatasetLocation{
				loc(nodes[(d*7)%n], "", "", "200Gi"),
				loc(nodes[(d*13+5)%n], "", "", "200Gi"),
				loc("", fmt.Sprintf("%s%c", regionEast1, 'a'+d%3), "", "1Ti"),
				loc("", "", regionEast1, "2Ti"),
			},
		},
	}
}

// gangWorkload: gangs of gangSize pods (a PodGroup with minMember =
// gangSize each) over quotaNamespaces namespaces, each with an
// ElasticQuota. Two namespaces have a min above their demand and two below,
// so that the latter borrow; the sum of mins covers the whole demand and
// every max is twice the demand, so every pod fits in the end.
var gangWorkload = workload{
	name: "gang+quota",
	prepare: func(ctx context.Context, c *cluster, m *measurement) ([]*v1.Pod, error) {
		gangs := m.pods / m.gangSize
		perNS := make([]int, quotaNamespaces)
		for g := 0; g < gangs; g++ {
			perNS[g%quotaNamespaces] += m.gangSize
		}
		var nss []string
		for q := 0; q < quotaNamespaces; q++ {
			ns, err := m.namespace(ctx, c, fmt.Sprintf("%s-q%d", m.run, q))
			if err != nil {
				return nil, err
			}
			nss = append(nss, ns)
			minShare := 1.5
			if q >= quotaNamespaces/2 {
				minShare = 0.75
			}
			if _, err := c.sched.SchedulingV1alpha1().ElasticQuotas(ns).Create(ctx, elasticQuota(ns, perNS[q], minShare), metav1.CreateOptions{}); err != nil {
				return nil, fmt.Errorf("creating ElasticQuota: %w", err)
			}
		}
		pods := make([]*v1.Pod, 0, gangs*m.gangSize)
		for g := 0; g < gangs; g++ {
			ns, name := nss[g%quotaNamespaces], fmt.Sprintf("gang-%04d", g)
			pg := &schedv1alpha1.PodGroup{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec:       schedv1alpha1.PodGroupSpec{MinMember: int32(m.gangSize), ScheduleTimeoutSeconds: ptr.To[int32](60)},
			}
			if _, err := c.sched.SchedulingV1alpha1().PodGroups(ns).Create(ctx, pg, metav1.CreateOptions{}); err != nil {
				return nil, fmt.Errorf("creating PodGroup: %w", err)
			}
			for i := 0; i < m.gangSize; i++ {
				p := m.pod(ns, g*m.gangSize+i)
				p.Labels[schedv1alpha1.PodGroupLabel] = name
				pods = append(pods, p)
			}
		}
		return pods, nil
	},
	cleanup: func(ctx context.Context, c *cluster, m *measurement) error {
		for _, ns := range m.namespaces {
			s := c.sched.SchedulingV1alpha1()
			if err := s.PodGroups(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
				return fmt.Errorf("deleting PodGroups in %s: %w", ns, err)
			}
			if err := s.ElasticQuotas(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
				return fmt.Errorf("deleting ElasticQuotas in %s: %w", ns, err)
			}
		}
		return nil
	},
}

// elasticQuota for a namespace whose pods ask for pods times podCPU and
// podMemory: min is minShare of that, max twice that.
func elasticQuota(ns string, pods int, minShare float64) *schedv1alpha1.ElasticQuota {
	cpu, mem := resource.MustParse(podCPU), resource.MustParse(podMemory)
	scaled := func(q resource.Quantity, f float64) resource.Quantity {
		return *resource.NewMilliQuantity(int64(float64(q.MilliValue())*float64(pods)*f), q.Format)
	}
	return &schedv1alpha1.ElasticQuota{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "quota"},
		Spec: schedv1alpha1.ElasticQuotaSpec{
			Min: v1.ResourceList{v1.ResourceCPU: scaled(cpu, minShare), v1.ResourceMemory: scaled(mem, minShare)},
			Max: v1.ResourceList{v1.ResourceCPU: scaled(cpu, 2), v1.ResourceMemory: scaled(mem, 2)},
		},
	}
}
