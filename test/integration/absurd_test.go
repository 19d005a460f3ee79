package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

var (
	elasticQuotaGVR = schedv1alpha1.SchemeGroupVersion.WithResource("elasticquotas")
	podGroupGVR     = schedv1alpha1.SchemeGroupVersion.WithResource("podgroups")
)

// annotationLimit is what the API server allows of an object's annotations,
// keys and values together.
const annotationLimit = 256 * 1024

// createRaw creates a custom resource from its JSON form, as kubectl would:
// values go to the API server as written, whether or not Go types could
// hold them.
func createRaw(ctx context.Context, e *quotaEnv, gvr schema.GroupVersionResource, kind, ns, name string, spec map[string]interface{}) error {
	obj := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": gvr.GroupVersion().String(),
		"kind":       kind,
		"metadata":   map[string]interface{}{"namespace": ns, "name": name},
		"spec":       spec,
	}}
	_, err := e.Dynamic.Resource(gvr).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{})
	return err
}

// objectEvents returns the notes of the events about an object of kind.
func objectEvents(ctx context.Context, e *quotaEnv, kind, ns, name, reason string) []string {
	sel := fields.Set{"regarding.kind": kind, "regarding.name": name, "reason": reason}
	list, err := e.Client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: sel.AsSelector().String()})
	if err != nil {
		return nil
	}
	var out []string
	for _, ev := range list.Items {
		out = append(out, ev.Note)
	}
	return out
}

// Absurd objects and inputs, on the real API server (whose CRD validation
// refuses some: that is the recorded outcome), with the shipped profile,
// under the invariant checker. Locus keeps running and placing pods
// throughout; reasons, events and log lines stay bounded.
func TestAbsurdObjects(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx, logs := bufferedContext(ctx, t)
	e := startQuotaEnv(ctx, t, 2, "16")
	c := e.Client
	for _, ns := range []string{"negative", "huge", "words", "gangs", "data", "notes", "steady"} {
		if err := testenv.CreateNamespace(ctx, c, ns, nil); err != nil {
			t.Fatal(err)
		}
	}
	steady := startScheduling(ctx, t, c, "steady", 500*time.Millisecond)

	t.Run("ElasticQuota values", func(t *testing.T) {
		for _, tc := range []struct {
			ns, name string
			min, max map[string]interface{}
			refused  string // what the API server's message says, if it refuses
		}{
			{ns: "negative", name: "quota", min: map[string]interface{}{"cpu": "-4"}, max: map[string]interface{}{"cpu": "-2"}},
			// One namespace only with amounts beyond int64: the invariant
			// checker sums the quotas' min without saturating, and two
			// saturated mins would wrap to a false aggregate violation.
			{ns: "huge", name: "quota",
				min: map[string]interface{}{"cpu": "1e18", "memory": "9223372036854775807", "ephemeral-storage": "1e1000"},
				max: map[string]interface{}{"cpu": "1e18", "memory": "9223372036854775807", "ephemeral-storage": "1e1000"}},
			{ns: "words", name: "lots", max: map[string]interface{}{"cpu": "lots"}, refused: "spec.max.cpu"},
			{ns: "words", name: "hex", max: map[string]interface{}{"cpu": "0x10"}, refused: "spec.max.cpu"},
			{ns: "words", name: "infinity", min: map[string]interface{}{"cpu": "Infinity"}, refused: "spec.min.cpu"},
			{ns: "words", name: "float", max: map[string]interface{}{"cpu": 1e30}, refused: "spec.max.cpu"},
			{ns: "words", name: "int64", max: map[string]interface{}{"cpu": int64(9223372036854775807)}},
		} {
			spec := map[string]interface{}{}
			if tc.min != nil {
				spec["min"] = tc.min
			}
			if tc.max != nil {
				spec["max"] = tc.max
			}
			err := createRaw(ctx, e, elasticQuotaGVR, "ElasticQuota", tc.ns, tc.name, spec)
			switch {
			case tc.refused == "" && err != nil:
				t.Errorf("ElasticQuota %s/%s %v refused: %v", tc.ns, tc.name, spec, err)
			case tc.refused != "" && err == nil:
				t.Errorf("ElasticQuota %s/%s %v accepted, want it refused", tc.ns, tc.name, spec)
			case err != nil && !strings.Contains(err.Error(), tc.refused):
				t.Errorf("ElasticQuota %s/%s refused with %q, want it to name %s", tc.ns, tc.name, err, tc.refused)
			case err != nil:
				t.Logf("ElasticQuota %s/%s %v: refused: %v", tc.ns, tc.name, spec, err)
			default:
				t.Logf("ElasticQuota %s/%s %v: accepted", tc.ns, tc.name, spec)
			}
		}
		if err := e.sched.SchedulingV1alpha1().ElasticQuotas("words").Delete(ctx, "int64", metav1.DeleteOptions{}); err != nil {
			t.Error(err)
		}

		// Negative amounts count as zero: nothing fits; the quota is named
		// invalid in an event.
		createPods(ctx, t, c, "negative", "p", 2, "1", nil, plugins.SchedulerName)
		msg, err := testenv.WaitForPodUnschedulable(ctx, c, "negative", "p-00", 30*time.Second)
		if err != nil {
			t.Error(err)
		}
		t.Logf("a pod under max cpu -2 waits: %q", msg)
		if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			evs := objectEvents(ctx, e, "ElasticQuota", "negative", "quota", locusv1alpha1.EventReasonInvalidQuota)
			if len(evs) > 0 {
				t.Logf("InvalidQuota event: %q", evs[0])
			}
			return len(evs) > 0, nil
		}); err != nil {
			t.Errorf("no InvalidQuota event on negative/quota: %v", err)
		}

		// Amounts beyond int64 saturate: pods fit, and used is right.
		for i := 0; i < 3; i++ {
			if _, err := testenv.CreatePod(ctx, c, testenv.PodSpec{Namespace: "huge", Name: fmt.Sprintf("p-%02d", i), SchedulerName: plugins.SchedulerName, CPU: "1", Memory: "1Gi"}); err != nil {
				t.Fatal(err)
			}
		}
		waitBound(ctx, t, c, "huge", "", 3, 30*time.Second)
		if err := e.waitUsedCPU(ctx, "huge", "3", 10*time.Second); err != nil {
			t.Error(err)
		}
	})

	t.Run("PodGroup minMember", func(t *testing.T) {
		err := createRaw(ctx, e, podGroupGVR, "PodGroup", "gangs", "zero", map[string]interface{}{"minMember": int64(0)})
		if err == nil || !strings.Contains(err.Error(), "spec.minMember") {
			t.Errorf("PodGroup with minMember 0: %v, want it refused naming spec.minMember", err)
		} else {
			t.Logf("PodGroup minMember 0: refused: %v", err)
		}
		for _, tc := range []struct {
			name      string
			minMember int64
		}{{"hundred-thousand", 100000}, {"max-int32", 2147483647}} {
			if err := createRaw(ctx, e, podGroupGVR, "PodGroup", "gangs", tc.name, map[string]interface{}{"minMember": tc.minMember, "scheduleTimeoutSeconds": int64(10)}); err != nil {
				t.Errorf("PodGroup minMember %d refused: %v", tc.minMember, err)
				continue
			}
			createPods(ctx, t, c, "gangs", tc.name, 3, "100m", map[string]string{schedv1alpha1.PodGroupLabel: tc.name}, plugins.SchedulerName)
			// Each member says so at its last attempt: the first, tried
			// alone, says 1 (an unscheduled sibling's arrival does not
			// requeue it in kube-scheduler 1.34: the count it shows is
			// that of its last attempt); the last says 3.
			var msg string
			for i := 0; i < 3; i++ {
				var err error
				msg, err = testenv.WaitForPodUnschedulable(ctx, c, "gangs", fmt.Sprintf("%s-%02d", tc.name, i), 30*time.Second)
				if err != nil {
					t.Error(err)
					continue
				}
				if want := fmt.Sprintf("of its minMember %d pods", tc.minMember); !strings.Contains(msg, want) {
					t.Errorf("member %d of a gang of minMember %d waits with %q, want it to say %q", i, tc.minMember, msg, want)
				}
			}
			if want := fmt.Sprintf("gang %s has 3 of its minMember %d pods", tc.name, tc.minMember); !strings.Contains(msg, want) {
				t.Errorf("the last member of a gang of minMember %d waits with %q, want it to say %q", tc.minMember, msg, want)
			}
			t.Logf("PodGroup minMember %d: members wait: %q", tc.minMember, msg)
		}
		time.Sleep(2 * time.Second)
		if pods, _ := boundPods(ctx, c, "gangs", ""); len(pods) != 0 {
			t.Errorf("%d members of impossible gangs bound", len(pods))
		}
	})

	t.Run("Dataset locations", func(t *testing.T) {
		locus := locusClient(t, e.Config)
		var wide []locusv1alpha1.DatasetLocation
		for i := 0; i < 10000; i++ {
			wide = append(wide, onNode(fmt.Sprintf("cache-%05d", i), "1Gi"))
		}
		err := createDataset(ctx, locus, "data", "ten-thousand", wide...)
		if err == nil || !strings.Contains(err.Error(), "spec.locations") {
			t.Errorf("a Dataset of 10,000 locations: %v, want it refused naming spec.locations", err)
		} else {
			t.Logf("Dataset of 10,000 locations: refused: %.300s", err)
		}

		// The most the CRD allows, 512, node-1 the last; then amounts
		// beyond int64 (1e30 read as 0 before this change: the pod went
		// to node-0, in the zone of 1Ti) and negative. node-0 is in
		// zone-0, node-1 in zone-1.
		most := append(wide[:509:509], locusv1alpha1.DatasetLocation{Zone: "zone-0", Bytes: resource.MustParse("100Gi")},
			locusv1alpha1.DatasetLocation{Region: "nowhere", Bytes: resource.MustParse("1Ti")}, onNode("node-1", "1Ti"))
		for _, tc := range []struct {
			name     string
			locs     []locusv1alpha1.DatasetLocation
			wantNode string
		}{
			{name: "five-hundred-twelve", locs: most, wantNode: "node-1"},
			{name: "beyond-int64", locs: []locusv1alpha1.DatasetLocation{onNode("node-1", "1e30"), {Zone: "zone-0", Bytes: resource.MustParse("1Ti")}}, wantNode: "node-1"},
			{name: "negative", locs: []locusv1alpha1.DatasetLocation{onNode("node-1", "-1Ti")}},
		} {
			if err := createDataset(ctx, locus, "data", tc.name, tc.locs...); err != nil {
				t.Errorf("Dataset %s refused: %v", tc.name, err)
				continue
			}
			seen := e.Locus.Informers.InformerFor(&locusv1alpha1.Dataset{}, nil).GetStore()
			if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
				_, ok, err := seen.GetByKey("data/" + tc.name)
				return ok, err
			}); err != nil {
				t.Fatal(err)
			}
			node := readerPod(ctx, t, c, "data", "reads-"+tc.name, tc.name)
			if tc.wantNode != "" && node != tc.wantNode {
				t.Errorf("a pod reading Dataset %s bound to %s, want %s", tc.name, node, tc.wantNode)
			}
			t.Logf("Dataset %s (%d locations): accepted; a pod reading it bound to %s", tc.name, len(tc.locs), node)
		}
	})

	t.Run("256 KiB annotations", func(t *testing.T) {
		fill := func(key, unit string) string {
			n := (annotationLimit - len(key)) / len(unit)
			return strings.Repeat(unit, n)
		}
		var names strings.Builder
		for i := 0; names.Len() < annotationLimit-len(locusv1alpha1.AnnotationDatasets)-16; i++ {
			fmt.Fprintf(&names, "ds-%06d,", i)
		}
		// Refused: one byte over, keys and values together.
		over := strings.Repeat("x", annotationLimit-len(locusv1alpha1.AnnotationDatasets)+1)
		_, err := testenv.CreatePod(ctx, c, testenv.PodSpec{Namespace: "notes", Name: "over", SchedulerName: plugins.SchedulerName,
			Annotations: map[string]string{locusv1alpha1.AnnotationDatasets: over}})
		if err == nil || !strings.Contains(err.Error(), "metadata.annotations") {
			t.Errorf("a pod with %d bytes of annotations: %v, want it refused", len(over)+len(locusv1alpha1.AnnotationDatasets), err)
		} else {
			t.Logf("a pod with 256 KiB + 1 byte of annotations: refused: %.300s", err)
		}

		for _, tc := range []struct {
			name, key, value string
			binds            bool
			// bounded: the condition message and the log stay short (the
			// plugin's own messages); false for Compliance, whose messages
			// this change does not touch: what it does is recorded.
			bounded bool
		}{
			{name: "datasets-one-name", key: locusv1alpha1.AnnotationDatasets, value: fill(locusv1alpha1.AnnotationDatasets, "x"), binds: true, bounded: true},
			{name: "datasets-many-names", key: locusv1alpha1.AnnotationDatasets, value: names.String(), binds: true, bounded: true},
			// A wait applies only to a pod that reads data: room for "locus.dev/datasets: a".
			{name: "locality-wait", key: locusv1alpha1.AnnotationLocalityWait, value: fill(locusv1alpha1.AnnotationLocalityWait+locusv1alpha1.AnnotationDatasets+"a", "9"), bounded: true},
			{name: "compliance-one-token", key: locusv1alpha1.AnnotationCompliance, value: fill(locusv1alpha1.AnnotationCompliance, "X")},
			{name: "compliance-many-standards", key: locusv1alpha1.AnnotationCompliance, value: fill(locusv1alpha1.AnnotationCompliance, "std-0001,")},
		} {
			ann := map[string]string{tc.key: tc.value}
			if tc.key == locusv1alpha1.AnnotationLocalityWait {
				ann[locusv1alpha1.AnnotationDatasets] = "a"
			}
			if _, err := testenv.CreatePod(ctx, c, testenv.PodSpec{Namespace: "notes", Name: tc.name, SchedulerName: plugins.SchedulerName, CPU: "100m", Annotations: ann}); err != nil {
				t.Errorf("%s: pod refused: %.300s", tc.name, err)
				continue
			}
			var outcome string
			if tc.binds {
				node, err := testenv.WaitForPodBound(ctx, c, "notes", tc.name, 30*time.Second)
				if err != nil {
					t.Error(err)
					continue
				}
				outcome = "bound to " + node
			} else {
				msg, err := testenv.WaitForPodUnschedulable(ctx, c, "notes", tc.name, 30*time.Second)
				if err != nil {
					t.Error(err)
					continue
				}
				outcome = fmt.Sprintf("unschedulable, condition message of %d bytes: %.160q", len(msg), msg)
				if tc.bounded && len(msg) > 1024 {
					t.Errorf("%s: condition message of %d bytes", tc.name, len(msg))
				}
			}
			// Events: every one within the API server's limit (a longer
			// one is refused and lost), and the one expected is there.
			reason := "FailedScheduling"
			if tc.binds {
				reason = locusv1alpha1.EventReasonDatasetNotFound
			}
			if _, err := testenv.WaitForPodEvent(ctx, c, "notes", tc.name, reason, "", 10*time.Second); err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			evs, _ := testenv.PodEvents(ctx, c, "notes", tc.name, "")
			longestEvent := 0
			var eventNote string
			for _, ev := range evs {
				if len(ev.Note) > longestEvent {
					longestEvent, eventNote = len(ev.Note), ev.Reason+": "+ev.Note
				}
			}
			longestLog := logs.longest(`pod="notes/` + tc.name + `"`)
			if tc.bounded && longestLog > 4096 {
				t.Errorf("%s: a log line of %d bytes", tc.name, longestLog)
			}
			t.Logf("%s (%d bytes): %s; longest event %d bytes (%.200q); longest log line naming the pod %d bytes",
				tc.name, len(tc.value), outcome, longestEvent, eventNote, longestLog)
		}
	})

	// Still running and placing pods.
	createPods(ctx, t, c, "notes", "plain", 1, "100m", nil, plugins.SchedulerName)
	waitBound(ctx, t, c, "notes", "", 3, 30*time.Second) // 2 readers of datasets and the plain pod
	n := steady.finish(ctx, t, c, "steady")
	t.Logf("%d pods created every 500 ms throughout, all bound", n)
}
