package datalocality

import (
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/utils/clock"
)

// tracker keeps what the plugin must remember about a pod across scheduling
// cycles, until the pod is bound or deleted: when it was first tried (the
// start of its locality wait), which missing Datasets were already reported,
// the timer that requeues it when its wait moves to the next level, and
// where it waits (for queueing hints). The framework does not give Filter
// the pod's first attempt time, so the plugin keeps it.
type tracker struct {
	clock clock.WithDelayedExecution
	// activate requeues a pod; it is the framework handle's Activate.
	activate func(pod *v1.Pod)

	mu   sync.Mutex
	pods map[types.UID]*podRecord
}

type podRecord struct {
	namespace, name string
	firstSeen       time.Time
	reported        sets.Set[string]
	// data and step describe the wait while the pod waits; nil data
	// means that the pod does not wait.
	data *Data
	step Step
	// timer fires at timerAt, when the next level opens.
	timer   clock.Timer
	timerAt time.Time
}

func newTracker(c clock.WithDelayedExecution, activate func(pod *v1.Pod)) *tracker {
	return &tracker{clock: c, activate: activate, pods: map[types.UID]*podRecord{}}
}

// record returns the pod's record, creating it at the first sight of the pod.
// The caller holds t.mu.
func (t *tracker) record(pod *v1.Pod) *podRecord {
	r, ok := t.pods[pod.UID]
	if !ok {
		r = &podRecord{namespace: pod.Namespace, name: pod.Name, firstSeen: t.clock.Now()}
		t.pods[pod.UID] = r
	}
	return r
}

// firstSeen returns when the pod was first tried, recording now if never.
func (t *tracker) firstSeen(pod *v1.Pod) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.record(pod).firstSeen
}

// newlyMissing returns the names among missing that were not reported for
// this pod before, and marks them reported: one event per pod and Dataset.
func (t *tracker) newlyMissing(pod *v1.Pod, missing []string) []string {
	if len(missing) == 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.record(pod)
	if r.reported == nil {
		r.reported = sets.New[string]()
	}
	var fresh []string
	for _, name := range missing {
		if !r.reported.Has(name) {
			r.reported.Insert(name)
			fresh = append(fresh, name)
		}
	}
	return fresh
}

// wait records that the pod waits at step (computed at now) for its data d,
// and makes sure that a timer requeues it when the next level opens.
func (t *tracker) wait(pod *v1.Pod, d *Data, step Step, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.record(pod)
	r.data, r.step = d, step
	at := now.Add(step.Left)
	if r.timer != nil && r.timerAt.Equal(at) {
		return
	}
	if r.timer != nil {
		r.timer.Stop()
	}
	uid := pod.UID
	r.timerAt = at
	r.timer = t.clock.AfterFunc(at.Sub(t.clock.Now()), func() {
		t.mu.Lock()
		r, ok := t.pods[uid]
		if ok && r.timerAt.Equal(at) {
			r.timer, r.timerAt = nil, time.Time{}
		}
		t.mu.Unlock()
		if ok {
			t.activate(pod)
		}
	})
}

// done records that the pod no longer waits (its wait ran out, or it has
// no wait), keeping its first-seen time and reported Datasets.
func (t *tracker) done(pod *v1.Pod) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.pods[pod.UID]
	if !ok {
		return
	}
	r.data, r.step = nil, Step{}
	if r.timer != nil {
		r.timer.Stop()
		r.timer, r.timerAt = nil, time.Time{}
	}
}

// waiting returns the pod's data and step while it waits, else nil.
func (t *tracker) waiting(uid types.UID) (*Data, Step) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := t.pods[uid]; ok && r.data != nil {
		return r.data, r.step
	}
	return nil, Step{}
}

// forget drops everything about a pod: it was bound or deleted.
func (t *tracker) forget(uid types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := t.pods[uid]; ok {
		if r.timer != nil {
			r.timer.Stop()
		}
		delete(t.pods, uid)
	}
}

// len returns how many pods are tracked.
func (t *tracker) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pods)
}

// sweep forgets the pods for which keep returns false (pods that are gone
// or bound, whose delete or bind event raced with a scheduling cycle).
func (t *tracker) sweep(keep func(uid types.UID, namespace, name string) bool) {
	t.mu.Lock()
	var uids []types.UID
	type ref struct{ ns, name string }
	refs := map[types.UID]ref{}
	for uid, r := range t.pods {
		uids = append(uids, uid)
		refs[uid] = ref{r.namespace, r.name}
	}
	t.mu.Unlock()
	for _, uid := range uids {
		if !keep(uid, refs[uid].ns, refs[uid].name) {
			t.forget(uid)
		}
	}
}
