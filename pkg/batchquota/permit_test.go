package batchquota

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

func TestPermit(t *testing.T) {
	const ns = "team-a"
	gangOf3 := []*v1.Pod{
		bqMember(ns, "m1", "train", 1).Obj(),
		bqMember(ns, "m2", "train", 1).Obj(),
		bqMember(ns, "m3", "train", 1).Obj(),
	}
	tests := []struct {
		name        string
		group       *schedv1alpha1.PodGroup
		pods        []*v1.Pod
		reserved    []*v1.Pod // pass PreFilter and Reserve, in order; the last is the pod
		noState     bool      // Permit without a PreFilter state
		want        *fwk.Status
		wantTimeout time.Duration
	}{
		{
			name:     "a pod on its own goes through",
			pods:     []*v1.Pod{bqPod(ns, "p", 1).Obj()},
			reserved: []*v1.Pod{bqPod(ns, "p", 1).Obj()},
		},
		{
			name:     "without PreFilter state: error",
			pods:     []*v1.Pod{bqPod(ns, "p", 1).Obj()},
			reserved: []*v1.Pod{bqPod(ns, "p", 1).Obj()},
			noState:  true,
		},
		{
			name:        "gang below minMember waits the PodGroup's scheduleTimeoutSeconds",
			group:       bqGroup(ns, "train", 3, int32Ptr(30)),
			pods:        gangOf3,
			reserved:    gangOf3[:1],
			want:        fwk.NewStatus(fwk.Wait, "gang train has 1 of 3 members reserved"),
			wantTimeout: 30 * time.Second,
		},
		{
			name:        "second member of three still waits",
			group:       bqGroup(ns, "train", 3, int32Ptr(30)),
			pods:        gangOf3,
			reserved:    gangOf3[:2],
			want:        fwk.NewStatus(fwk.Wait, "gang train has 2 of 3 members reserved"),
			wantTimeout: 30 * time.Second,
		},
		{
			name:        "PodGroup without scheduleTimeoutSeconds: the args default",
			group:       bqGroup(ns, "train", 3, nil),
			pods:        gangOf3,
			reserved:    gangOf3[:1],
			want:        fwk.NewStatus(fwk.Wait, "gang train has 1 of 3 members reserved"),
			wantTimeout: bqDefaultTimeout * time.Second,
		},
		{
			name:        "PodGroup with scheduleTimeoutSeconds 0: the args default",
			group:       bqGroup(ns, "train", 3, int32Ptr(0)),
			pods:        gangOf3,
			reserved:    gangOf3[:1],
			want:        fwk.NewStatus(fwk.Wait, "gang train has 1 of 3 members reserved"),
			wantTimeout: bqDefaultTimeout * time.Second,
		},
		{
			name:     "the member that completes the gang goes through",
			group:    bqGroup(ns, "train", 3, int32Ptr(30)),
			pods:     gangOf3,
			reserved: gangOf3,
		},
		{
			name:     "a gang of one goes through at once",
			group:    bqGroup(ns, "train", 1, int32Ptr(30)),
			pods:     gangOf3[:1],
			reserved: gangOf3[:1],
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := bqSetup{pods: tt.pods}
			if tt.group != nil {
				s.groups = []*schedv1alpha1.PodGroup{tt.group}
			}
			env := newBQ(t, s)
			var state *framework.CycleState
			for _, p := range tt.reserved {
				state = env.preFiltered(t, p)
				if s := env.pl.Reserve(env.ctx, state, p, "n1"); !s.IsSuccess() {
					t.Fatalf("Reserve(%s): %v", p.Name, s)
				}
			}
			if tt.noState {
				state = framework.NewCycleState()
			}
			pod := tt.reserved[len(tt.reserved)-1]
			got, timeout := env.pl.Permit(env.ctx, state, pod, "n1")
			if tt.noState {
				if got.Code() != fwk.Error {
					t.Errorf("Permit = %v, want an Error status", got)
				}
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Permit status (-want,+got):\n%s", diff)
			}
			if timeout != tt.wantTimeout {
				t.Errorf("Permit timeout = %v, want %v", timeout, tt.wantTimeout)
			}
		})
	}
}

// permitThroughFramework runs PreFilter, Reserve and the framework's Permit
// for a pod, as the scheduling cycle does, and returns its cycle state.
func (e *bqEnv) permitThroughFramework(t *testing.T, pod *v1.Pod) (*framework.CycleState, *fwk.Status) {
	t.Helper()
	state := e.preFiltered(t, pod)
	if s := e.pl.Reserve(e.ctx, state, pod, "n1"); !s.IsSuccess() {
		t.Fatalf("Reserve(%s): %v", pod.Name, s)
	}
	return state, e.fw.RunPermitPlugins(e.ctx, state, pod, "n1")
}

// waitOnPermit is the framework's WaitOnPermit, failing the test rather than
// hanging until the pod's Permit timeout when nothing lets the pod go.
func (e *bqEnv) waitOnPermit(t *testing.T, pod *v1.Pod) *fwk.Status {
	t.Helper()
	done := make(chan *fwk.Status, 1)
	go func() { done <- e.fw.WaitOnPermit(e.ctx, pod) }()
	select {
	case s := <-done:
		return s
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still waits in Permit", pod.Name)
		return nil
	}
}

// TestGangAllOrNothing: members wait in Permit until minMember are reserved,
// and then all go through; a member that is not placed releases the others.
func TestGangAllOrNothing(t *testing.T) {
	const ns = "team-a"
	m1 := bqMember(ns, "m1", "train", 1).Obj()
	m2 := bqMember(ns, "m2", "train", 1).Obj()
	m3 := bqMember(ns, "m3", "train", 1).Obj()
	lone := bqPod(ns, "lone", 1).Obj()
	setup := bqSetup{
		quotas: []*schedv1alpha1.ElasticQuota{bqEQ(ns, "10", "10")},
		groups: []*schedv1alpha1.PodGroup{bqGroup(ns, "train", 3, int32Ptr(60))},
		pods:   []*v1.Pod{m1, m2, m3, lone},
	}
	released := fwk.NewStatus(fwk.Unschedulable, "gang train released: member m3 was not placed").WithPlugin(Name)

	t.Run("the last member lets the waiting ones through", func(t *testing.T) {
		env := newBQ(t, setup)
		for _, p := range []*v1.Pod{m1, m2} {
			if _, s := env.permitThroughFramework(t, p); s.Code() != fwk.Wait {
				t.Fatalf("Permit(%s) = %v, want Wait", p.Name, s)
			}
		}
		if _, s := env.permitThroughFramework(t, m3); !s.IsSuccess() {
			t.Fatalf("Permit(m3) = %v, want Success", s)
		}
		for _, p := range []*v1.Pod{m1, m2} {
			if diff := cmp.Diff((*fwk.Status)(nil), env.waitOnPermit(t, p)); diff != "" {
				t.Errorf("WaitOnPermit(%s) (-want,+got):\n%s", p.Name, diff)
			}
		}
	})

	t.Run("a member that is not placed releases the waiting ones and their quota", func(t *testing.T) {
		env := newBQ(t, setup)
		if _, s := env.permitThroughFramework(t, lone); !s.IsSuccess() {
			t.Fatalf("Permit(lone) = %v, want Success", s)
		}
		if _, s := env.permitThroughFramework(t, m1); s.Code() != fwk.Wait {
			t.Fatalf("Permit(m1) = %v, want Wait", s)
		}
		// m3 is reserved, but a later plugin turns it away before Permit.
		state3 := env.preFiltered(t, m3)
		if s := env.pl.Reserve(env.ctx, state3, m3, "n1"); !s.IsSuccess() {
			t.Fatalf("Reserve(m3): %v", s)
		}
		env.pl.Unreserve(env.ctx, state3, m3, "n1")
		if diff := cmp.Diff(released, env.waitOnPermit(t, m1)); diff != "" {
			t.Errorf("WaitOnPermit(m1) (-want,+got):\n%s", diff)
		}
		// As the scheduler does for a pod rejected while waiting.
		env.pl.Unreserve(env.ctx, env.preFiltered(t, m1), m1, "n1")

		got, _ := env.pl.cache.Get(ns)
		if diff := cmp.Diff(quotaUsage{Used: map[v1.ResourceName]int64{v1.ResourceCPU: 1000}}, quotaUsage{Used: got.Used, Held: got.Held}, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("quota after the release (-want,+got):\n%s", diff)
		}
		if env.pl.cache.HasPod(m1.UID) || env.pl.cache.HasPod(m3.UID) {
			t.Errorf("released members are still counted")
		}
	})

	t.Run("the waiting members of another gang are not released", func(t *testing.T) {
		other := bqMember(ns, "o1", "other", 1).Obj()
		s := setup
		s.pods = append([]*v1.Pod{other, bqMember(ns, "o2", "other", 1).Obj()}, setup.pods...)
		s.groups = append([]*schedv1alpha1.PodGroup{bqGroup(ns, "other", 2, int32Ptr(60))}, setup.groups...)
		env := newBQ(t, s)
		if _, s := env.permitThroughFramework(t, other); s.Code() != fwk.Wait {
			t.Fatalf("Permit(o1) = %v, want Wait", s)
		}
		if _, s := env.permitThroughFramework(t, m1); s.Code() != fwk.Wait {
			t.Fatalf("Permit(m1) = %v, want Wait", s)
		}
		state3 := env.preFiltered(t, m3)
		env.pl.Reserve(env.ctx, state3, m3, "n1")
		env.pl.Unreserve(env.ctx, state3, m3, "n1")
		if diff := cmp.Diff(released, env.waitOnPermit(t, m1)); diff != "" {
			t.Errorf("WaitOnPermit(m1) (-want,+got):\n%s", diff)
		}
		if wp := env.fw.GetWaitingPod(other.UID); wp == nil {
			t.Errorf("o1 of gang other no longer waits")
		} else {
			wp.Reject("test", "cleanup")
		}
	})
}

type quotaUsage struct {
	Used, Held map[v1.ResourceName]int64
}

// TestGangTimeout: members that waited too long are rejected by the
// framework; when the last is unreserved, the gang's quota is free, a
// GangTimeout event is recorded, and the gang backs off for one timeout
// before its pods are activated again.
func TestGangTimeout(t *testing.T) {
	const ns = "team-a"
	m1 := bqMember(ns, "m1", "train", 1).Obj()
	m2 := bqMember(ns, "m2", "train", 1).Obj()
	m3 := bqMember(ns, "m3", "train", 1).Obj()
	env := newBQ(t, bqSetup{
		quotas: []*schedv1alpha1.ElasticQuota{bqEQ(ns, "10", "10")},
		groups: []*schedv1alpha1.PodGroup{bqGroup(ns, "train", 3, int32Ptr(1))},
		pods:   []*v1.Pod{m1, m2, m3},
	})
	states := map[string]*framework.CycleState{}
	for _, p := range []*v1.Pod{m1, m2} {
		state, s := env.permitThroughFramework(t, p)
		if s.Code() != fwk.Wait {
			t.Fatalf("Permit(%s) = %v, want Wait", p.Name, s)
		}
		states[p.Name] = state
	}
	timedOut := fwk.NewStatus(fwk.Unschedulable, "rejected due to timeout after waiting 1s at plugin BatchQuota").WithPlugin(Name)
	for _, p := range []*v1.Pod{m1, m2} {
		if diff := cmp.Diff(timedOut, env.waitOnPermit(t, p)); diff != "" {
			t.Fatalf("WaitOnPermit(%s) (-want,+got):\n%s", p.Name, diff)
		}
	}
	env.activations()
	env.events()
	for _, p := range []*v1.Pod{m1, m2} {
		env.pl.Unreserve(env.ctx, states[p.Name], p, "n1")
	}

	got, _ := env.pl.cache.Get(ns)
	if diff := cmp.Diff(quotaUsage{}, quotaUsage{Used: got.Used, Held: got.Held}, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("quota after the timeout (-want,+got):\n%s", diff)
	}
	wantEvents := []string{"Warning GangTimeout gang train was released before reaching minMember 3 (2 members were reserved): their quota and node resources are free; it tries again in one schedule timeout"}
	if diff := cmp.Diff(wantEvents, env.events()); diff != "" {
		t.Errorf("events (-want,+got):\n%s", diff)
	}

	// Backing off: one schedule timeout from the release.
	_, s := env.pl.PreFilter(env.ctx, framework.NewCycleState(), m1, nil)
	backingOff := fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "gang train did not assemble in time; it tries again after 2025-03-01T12:00:01Z")
	if diff := cmp.Diff(backingOff, s); diff != "" {
		t.Errorf("PreFilter during the backoff (-want,+got):\n%s", diff)
	}
	select {
	case pods := <-env.activated:
		var keys []string
		for k := range pods {
			keys = append(keys, k)
		}
		if diff := cmp.Diff([]string{"team-a/m1", "team-a/m2", "team-a/m3"}, keys, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
			t.Errorf("activated after the backoff (-want,+got):\n%s", diff)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the gang's pods were not activated after the backoff")
	}
	env.now = env.now.Add(time.Second)
	if _, s := env.pl.PreFilter(env.ctx, framework.NewCycleState(), m1, nil); !s.IsSuccess() {
		t.Errorf("PreFilter after the backoff = %v, want Success", s)
	}
}
