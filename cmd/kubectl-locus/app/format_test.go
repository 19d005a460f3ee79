package app

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/explain"
	"locus.dev/locus/pkg/plugins"
)

func list(kv ...string) v1.ResourceList {
	l := v1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[v1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func TestQuotaTable(t *testing.T) {
	quotas := []schedv1alpha1.ElasticQuota{
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: "etl", Name: "quota"},
			Spec:       schedv1alpha1.ElasticQuotaSpec{Min: list("cpu", "10", "memory", "20Gi"), Max: list("cpu", "20", "memory", "40Gi")},
			// Memory within min; 2 CPUs borrowed; pods' GPUs are not limited.
			Status: schedv1alpha1.ElasticQuotaStatus{Used: list("cpu", "12", "memory", "4Gi", "nvidia.com/gpu", "2")},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: "adhoc", Name: "cap"},
			// Only a max: everything used is borrowed.
			Spec:   schedv1alpha1.ElasticQuotaSpec{Max: list("cpu", "4")},
			Status: schedv1alpha1.ElasticQuotaStatus{Used: list("cpu", "1500m")},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: "idle", Name: "quota"},
			Spec:       schedv1alpha1.ElasticQuotaSpec{Min: list("cpu", "2"), Max: list("cpu", "2")},
		},
	}
	pending := func(ns, name string) v1.Pod {
		return *st.MakePod().Namespace(ns).Name(name).SchedulerName(plugins.SchedulerName).Obj()
	}
	pods := []v1.Pod{
		pending("etl", "a"), pending("etl", "b"),
		*st.MakePod().Namespace("etl").Name("bound").SchedulerName(plugins.SchedulerName).Node("n1").Obj(),
		*st.MakePod().Namespace("etl").Name("other-scheduler").SchedulerName("default-scheduler").Obj(),
		*st.MakePod().Namespace("etl").Name("done").SchedulerName(plugins.SchedulerName).Phase(v1.PodSucceeded).Obj(),
		pending("adhoc", "c"),
	}
	rows := quotaRows(quotas, pods)

	var buf bytes.Buffer
	if err := writeQuotas(&buf, rows, true); err != nil {
		t.Fatal(err)
	}
	want := `NAMESPACE   NAME    MIN                      MAX                      USED                    BORROWED   PENDING
adhoc       cap     <none>                   cpu=4                    cpu=1500m               cpu=1500m  1
etl         quota   cpu=10,memory=20Gi       cpu=20,memory=40Gi       cpu=12,memory=4Gi       cpu=2      2
idle        quota   cpu=2                    cpu=2                    0                       0          0
`
	if diff := cmp.Diff(squashLines(want), squashLines(buf.String())); diff != "" {
		t.Errorf("table with -A (-want,+got):\n%s", diff)
	}

	buf.Reset()
	if err := writeQuotas(&buf, rows[1:2], false); err != nil {
		t.Fatal(err)
	}
	want = `NAME    MIN                  MAX                  USED                BORROWED   PENDING
quota   cpu=10,memory=20Gi   cpu=20,memory=40Gi   cpu=12,memory=4Gi   cpu=2      2
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("table of one namespace (-want,+got):\n%s", diff)
	}
}

// squashLines collapses runs of blanks in each line.
func squashLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

func TestDatasetsTable(t *testing.T) {
	ds := func(ns, name string, locs ...locusv1alpha1.DatasetLocation) locusv1alpha1.Dataset {
		return locusv1alpha1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: locusv1alpha1.DatasetSpec{Locations: locs}}
	}
	datasets := []locusv1alpha1.Dataset{
		ds("analytics", "sales-2026",
			locusv1alpha1.DatasetLocation{Node: "worker-7", Bytes: resource.MustParse("400Gi")},
			locusv1alpha1.DatasetLocation{Node: "worker-gone", Bytes: resource.MustParse("10Gi")},
			locusv1alpha1.DatasetLocation{Zone: "us-east-1a", Bytes: resource.MustParse("1Ti")},
			locusv1alpha1.DatasetLocation{Region: "us-east-1", Bytes: resource.MustParse("1Ti")}),
		ds("analytics", "unread"),
	}
	reader := func(name, datasets, node string) v1.Pod {
		return *st.MakePod().Namespace("analytics").Name(name).Annotation(locusv1alpha1.AnnotationDatasets, datasets).Node(node).Obj()
	}
	pods := []v1.Pod{
		reader("a", "sales-2026", "worker-7"),
		reader("b", "sales-2026, clickstream", ""),
		reader("c", "clickstream", "worker-7"),
		*st.MakePod().Namespace("analytics").Name("finished").Annotation(locusv1alpha1.AnnotationDatasets, "sales-2026").Phase(v1.PodSucceeded).Obj(),
	}
	rows, missing := datasetRows(datasets, pods, map[string]bool{"worker-7": true})
	var buf bytes.Buffer
	if err := writeDatasets(&buf, rows, missing, false); err != nil {
		t.Fatal(err)
	}
	want := `NAME         PODS          LOCATIONS
sales-2026   2 (1 pending) node worker-7 400Gi, node worker-gone 10Gi (no such node), zone us-east-1a 1Ti, region us-east-1 1Ti
unread       0             <none>

Named by pods but not found (placed as if not named; see DatasetNotFound events):
  analytics/clickstream 2 (1 pending)
`
	if diff := cmp.Diff(squashLines(want), squashLines(buf.String())); diff != "" {
		t.Errorf("table (-want,+got):\n%s", diff)
	}
}

func TestExplanation(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	pod := st.MakePod().Namespace("pay").Name("card").UID("card-uid").SchedulerName(plugins.SchedulerName).
		Annotation(locusv1alpha1.AnnotationCompliance, "pci-dss").Req(map[v1.ResourceName]string{v1.ResourceCPU: "500m"}).Node("vault").Obj()
	ev := &explain.Evaluation{
		Pod:          pod,
		ScorePlugins: []string{"NodeResourcesFit", "Compliance"},
		Best:         "vault-2",
		Nodes: []explain.NodeResult{
			{Node: "vault-2", Scores: map[string]int64{"NodeResourcesFit": 90, "Compliance": 100}, Total: 190},
			{Node: "vault", Scores: map[string]int64{"NodeResourcesFit": 40, "Compliance": 100}, Total: 140},
			{Node: "general", Failures: []explain.Failure{{Plugin: "Compliance", Reason: "missing certification pci-dss", Unresolvable: true}}},
		},
	}
	event := func(reason, note, uid string, ago time.Duration) eventsv1.Event {
		return eventsv1.Event{
			Reason: reason, Note: note, Type: v1.EventTypeNormal, ReportingController: plugins.SchedulerName,
			Regarding: v1.ObjectReference{Kind: "Pod", Name: "card", UID: types.UID(uid)},
			EventTime: metav1.NewMicroTime(now.Add(-ago)),
		}
	}
	events := filterEvents([]eventsv1.Event{
		event("CompliantPlacement", "node vault holds pci-dss (no expiry)", "card-uid", time.Minute),
		event("Scheduled", "Successfully assigned pay/card to vault", "card-uid", 2*time.Minute),
		event("Pulled", "image pulled", "card-uid", 30*time.Second),
		event("FailedScheduling", "of a deleted pod of the same name", "old-uid", time.Hour),
	}, pod)

	var buf bytes.Buffer
	if err := writeExplanation(&buf, pod, ev, explanationOptions{Source: "ConfigMap kube-system/locus-scheduler-config", Profile: plugins.SchedulerName, Events: events, Now: now}); err != nil {
		t.Fatal(err)
	}
	want := `Pod: pay/card
Scheduler: locus-scheduler
Requests: cpu=500m
locus.dev/compliance: pci-dss
Node: vault
Profile: locus-scheduler, from ConfigMap kube-system/locus-scheduler-config

Evaluated now, as if the pod were not yet scheduled, against 3 nodes:
NODE VERDICT COMPLIANCE OTHER TOTAL FAILED
vault-2 best 100 90 190
vault feasible,current 100 40 140
general rejected - - - Compliance: missing certification pci-dss

Verdict: bound to vault (score 140 there now); would be placed on vault-2 now (score 190, best of 2 feasible nodes).

Events:
LAST SEEN TYPE REASON FROM MESSAGE
2m Normal Scheduled locus-scheduler Successfully assigned pay/card to vault
60s Normal CompliantPlacement locus-scheduler node vault holds pci-dss (no expiry)
`
	if diff := cmp.Diff(want, squashLines(buf.String())); diff != "" {
		t.Errorf("explanation (-want,+got):\n%s", diff)
	}
}

func TestVerdictLine(t *testing.T) {
	pending := st.MakePod().Namespace("pay").Name("card").Obj()
	bound := st.MakePod().Namespace("pay").Name("card").Node("vault").Obj()
	rejected := &explain.Evaluation{Nodes: []explain.NodeResult{
		{Node: "vault", Failures: []explain.Failure{{Plugin: "Compliance", Reason: "certification pci-dss expired 2026-01-31"}}},
	}}
	tests := []struct {
		name string
		pod  *v1.Pod
		ev   *explain.Evaluation
		want string
	}{
		{"pending", pending, rejected, "pending; would wait now: 0/1 nodes are available: 1 Compliance: certification pci-dss expired 2026-01-31."},
		{"bound where it would no longer fit", bound, rejected, "bound to vault (it fits there no longer); would wait now: 0/1 nodes are available: 1 Compliance: certification pci-dss expired 2026-01-31."},
		{"bound, but its quota would not admit it now", bound, &explain.Evaluation{
			PreFilter: &explain.Failure{Plugin: "BatchQuota", Reason: "quota etl/quota: cpu would be 3 (used 2 + request 1), over max 2"},
			Nodes:     []explain.NodeResult{{Node: "vault", Failures: []explain.Failure{{Plugin: "BatchQuota", Reason: "quota etl/quota: cpu would be 3 (used 2 + request 1), over max 2"}}}},
		}, "bound to vault (it would not be admitted now); would wait now: BatchQuota: quota etl/quota: cpu would be 3 (used 2 + request 1), over max 2."},
		{"bound to a node that is gone", bound, &explain.Evaluation{}, "bound to vault (that node is gone); would wait now: no nodes available to schedule pods."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := verdictLine(tc.pod, tc.ev, nil); got != tc.want {
				t.Errorf("want %q, got %q", tc.want, got)
			}
		})
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestReadOnly(t *testing.T) {
	sent := 0
	rt := readOnly{roundTripper(func(*http.Request) (*http.Response, error) {
		sent++
		return &http.Response{StatusCode: http.StatusOK}, nil
	})}
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		req, _ := http.NewRequest(method, "https://cluster/api/v1/namespaces/etl/pods", nil)
		if _, err := rt.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "read-only") {
			t.Errorf("%s: want refused, got %v", method, err)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, "https://cluster/api/v1/namespaces/etl/pods", nil)
	if _, err := rt.RoundTrip(req); err != nil {
		t.Errorf("GET: %v", err)
	}
	if sent != 1 {
		t.Errorf("want only the GET sent, %d requests were", sent)
	}
}
