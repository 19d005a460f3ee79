package compliance

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	testingclock "k8s.io/utils/clock/testing"

	"locus.dev/locus/apis/config"
)

// changeNode applies change to the node through the API and waits until the
// plugin's node lister shows it (done reports that it does).
func changeNode(ctx context.Context, t *testing.T, pl *Compliance, name string, change func(n *v1.Node), done func(n *v1.Node, err error) bool) {
	t.Helper()
	nodes := pl.handle.ClientSet().CoreV1().Nodes()
	n, err := nodes.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if change == nil {
		err = nodes.Delete(ctx, name, metav1.DeleteOptions{})
	} else {
		change(n)
		_, err = nodes.Update(ctx, n, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		n, err := pl.nodes.Get(name)
		return done(n, err), nil
	}); err != nil {
		t.Fatalf("the node lister did not see the change of node %s: %v", name, err)
	}
}

func removeLabel(key string) func(*v1.Node) { return func(n *v1.Node) { delete(n.Labels, key) } }

func setLabel(key, value string) func(*v1.Node) { return func(n *v1.Node) { n.Labels[key] = value } }

func hasLabel(key, value string) func(*v1.Node, error) bool {
	return func(n *v1.Node, err error) bool { return err == nil && n.Labels[key] == value }
}

func lacksLabel(key string) func(*v1.Node, error) bool {
	return func(n *v1.Node, err error) bool { _, ok := n.Labels[key]; return err == nil && !ok }
}

func isGone(_ *v1.Node, err error) bool { return err != nil }

// The check holds until the bind: Filter passes a node, then time passes
// (midnight UTC) or the node changes while the pod waits at Permit, and
// PreBind sends the pod back with a reason.
func TestPreBind(t *testing.T) {
	// A minute before midnight UTC on the last day of a dated certification.
	beforeMidnight := time.Date(2026, 2, 15, 23, 59, 30, 0, time.UTC)
	pciPod := st.MakePod().Name("p").Namespace("default").UID("p").Annotation(annCompliance, "pci-dss").Obj()
	euPod := st.MakePod().Name("p").Namespace("eu-data").UID("p").Obj()
	pciKey := defaultPrefix + "pci-dss"

	tests := []struct {
		name string
		pod  *v1.Pod
		node *v1.Node
		// advance moves the fake clock between Filter and PreBind.
		advance time.Duration
		// change alters the node between Filter and PreBind; nil deletes it.
		change func(*v1.Node)
		seen   func(*v1.Node, error) bool
		want   *fwk.Status
	}{
		{
			name:    "valid through the last day, then midnight UTC passes",
			pod:     pciPod,
			node:    st.MakeNode().Name("n1").Label(pciKey, "2026-02-15").Obj(),
			advance: time.Minute,
			want: fwk.NewStatus(fwk.Unschedulable,
				"node n1 no longer meets the compliance requirements before binding: certification pci-dss expired 2026-02-15"),
		},
		{
			name:    "the next day's certification survives midnight",
			pod:     pciPod,
			node:    st.MakeNode().Name("n1").Label(pciKey, "2026-02-16").Obj(),
			advance: time.Minute,
		},
		{
			name:   "certification removed while the pod waits",
			pod:    pciPod,
			node:   st.MakeNode().Name("n1").Label(pciKey, "true").Obj(),
			change: removeLabel(pciKey),
			seen:   lacksLabel(pciKey),
			want: fwk.NewStatus(fwk.Unschedulable,
				"node n1 no longer meets the compliance requirements before binding: missing certification pci-dss"),
		},
		{
			name:   "certification replaced by an invalid value",
			pod:    pciPod,
			node:   st.MakeNode().Name("n1").Label(pciKey, "true").Obj(),
			change: setLabel(pciKey, "revoked"),
			seen:   hasLabel(pciKey, "revoked"),
			want: fwk.NewStatus(fwk.Unschedulable,
				`node n1 no longer meets the compliance requirements before binding: certification pci-dss has invalid value "revoked"`),
		},
		{
			name:   "node moved out of the residency group",
			pod:    euPod,
			node:   st.MakeNode().Name("n1").Label(v1.LabelTopologyRegion, "eu-west-1").Obj(),
			change: setLabel(v1.LabelTopologyRegion, "us-east-1"),
			seen:   hasLabel(v1.LabelTopologyRegion, "us-east-1"),
			want: fwk.NewStatus(fwk.Unschedulable,
				"node n1 no longer meets the compliance requirements before binding: outside data residency eu"),
		},
		{
			name: "node deleted while the pod waits",
			pod:  pciPod,
			node: st.MakeNode().Name("n1").Label(pciKey, "true").Obj(),
			seen: isGone,
			want: fwk.NewStatus(fwk.Unschedulable, "node n1 no longer exists"),
		},
		{
			name: "unregulated pod is not checked",
			pod:  st.MakePod().Name("p").Namespace("default").UID("p").Obj(),
			node: st.MakeNode().Name("n1").Obj(),
			seen: isGone,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			pl, _ := newTestPlugin(ctx, t, pluginSetup{nodes: []*v1.Node{tt.node}, now: beforeMidnight})
			state := framework.NewCycleState()
			_, status := pl.PreFilter(ctx, state, tt.pod, nil)
			if status.IsSkip() {
				if got := pl.PreBindPreFlight(ctx, state, tt.pod, "n1"); !got.IsSkip() {
					t.Errorf("PreBindPreFlight() = %v for a pod without requirements, want Skip", got)
				}
			} else {
				if !status.IsSuccess() {
					t.Fatalf("PreFilter() = %v", status)
				}
				if got := pl.Filter(ctx, state, tt.pod, nodeInfo(tt.node)); !got.IsSuccess() {
					t.Fatalf("Filter() = %v, want the node to qualify at first", got)
				}
				if got := pl.PreBindPreFlight(ctx, state, tt.pod, "n1"); !got.IsSuccess() {
					t.Errorf("PreBindPreFlight() = %v for a regulated pod, want Success", got)
				}
			}
			pl.clock.(*testingclock.FakeClock).Step(tt.advance)
			if tt.seen != nil {
				changeNode(ctx, t, pl, "n1", tt.change, tt.seen)
			}
			got := pl.PreBind(ctx, state, tt.pod, "n1")
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("PreBind() (-want,+got):\n%s", diff)
			}
			_, err := state.Read(preBindStateKey)
			if wantAudit := tt.want.IsSuccess() && !status.IsSkip(); wantAudit != (err == nil) {
				t.Errorf("PreBind() wrote the audit state: %v, want %v", err == nil, wantAudit)
			}
		})
	}
}

// PostBind reports what PreBind checked, not the labels as they are when
// PostBind runs, in the event and in one log line at the default verbosity.
func TestPostBindAuditsWhatPreBindChecked(t *testing.T) {
	pciKey := defaultPrefix + "pci-dss"
	_, ctx := ktesting.NewTestContext(t)
	// The default verbosity: a V(1) line or above would not be kept.
	buffered := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true), ktesting.Verbosity(0)))
	ctx = klog.NewContext(ctx, buffered)
	node := st.MakeNode().Name("n1").Label(pciKey, "2026-03-31").Label(v1.LabelTopologyRegion, "eu-west-1").Obj()
	pl, recorder := newTestPlugin(ctx, t, pluginSetup{nodes: []*v1.Node{node}})
	pod := st.MakePod().Name("p").Namespace("default").UID("p").SchedulerName("locus-scheduler").
		Annotation(annCompliance, "pci-dss").Annotation(annResidency, "eu").Obj()
	state := framework.NewCycleState()
	if _, status := pl.PreFilter(ctx, state, pod, nil); !status.IsSuccess() {
		t.Fatalf("PreFilter() = %v", status)
	}
	if status := pl.PreBind(ctx, state, pod, "n1"); !status.IsSuccess() {
		t.Fatalf("PreBind() = %v", status)
	}
	// The certification is renewed and the region label changed after the
	// check; the audit must not claim what was not checked.
	changeNode(ctx, t, pl, "n1", func(n *v1.Node) {
		n.Labels[pciKey] = "2027-03-31"
		n.Labels[v1.LabelTopologyRegion] = "eu-central-1"
	}, hasLabel(pciKey, "2027-03-31"))
	pl.PostBind(ctx, state, pod, "n1")

	select {
	case got := <-recorder.Events:
		want := "Normal CompliantPlacement node n1 holds pci-dss (expires 2026-03-31); data residency eu: region eu-west-1"
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("PostBind() event (-want,+got):\n%s", diff)
		}
	default:
		t.Fatal("PostBind() recorded no event")
	}

	logs := buffered.GetSink().(ktesting.Underlier).GetBuffer().String()
	var line string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "Compliant placement ") {
			if line != "" {
				t.Fatalf("more than one audit log line:\n%s", logs)
			}
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no audit log line in:\n%s", logs)
	}
	if !strings.HasPrefix(line, "INFO ") {
		t.Errorf("audit log line is not at info level: %s", line)
	}
	wantCerts, _ := json.Marshal(map[string]string{"pci-dss": "expires 2026-03-31"})
	for _, want := range []string{
		`plugin="Compliance"`, `pod="default/p"`, `namespace="default"`, `node="n1"`,
		`certifications=` + string(wantCerts), `residency="eu"`, `region="eu-west-1"`,
		`regionLabel="topology.kubernetes.io/region"`, `checkedAt="2026-02-15T12:00:00Z"`,
		`scheduler="` + pl.identity + `"`, `profile="locus-scheduler"`,
	} {
		if !strings.Contains(line, want) {
			t.Errorf("audit log line lacks %s:\n%s", want, line)
		}
	}
	if strings.Contains(line, "2027-03-31") || strings.Contains(line, "eu-central-1") {
		t.Errorf("audit log line reports labels read after PreBind:\n%s", line)
	}
}

// The scheduler warns at start, at the default verbosity, when a kubelet
// could set the labels that the plugin trusts.
func TestWarnUnprotectedLabels(t *testing.T) {
	tests := []struct {
		name          string
		prefix, label string
		want          []string
	}{
		{name: "both protected", prefix: defaultPrefix, label: "node-restriction.kubernetes.io/region"},
		{name: "default residency label", prefix: defaultPrefix, label: v1.LabelTopologyRegion,
			want: []string{`residencyLabel="topology.kubernetes.io/region"`}},
		{name: "both unprotected", prefix: "certs.example.com/", label: "example.com/region",
			want: []string{`certificationLabelPrefix="certs.example.com/"`, `residencyLabel="example.com/region"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true), ktesting.Verbosity(0)))
			warnUnprotectedLabels(logger, config.ComplianceArgs{CertificationLabelPrefix: tt.prefix, ResidencyLabel: tt.label})
			var got []string
			for _, l := range strings.Split(logger.GetSink().(ktesting.Underlier).GetBuffer().String(), "\n") {
				if strings.HasPrefix(l, "INFO Warning:") {
					got = append(got, l)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("warnings %q, want %d", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) || !strings.Contains(got[i], "node-restriction.kubernetes.io/") {
					t.Errorf("warning %q, want it to name %s and the protected prefix", got[i], w)
				}
			}
		})
	}
}
