// Package gang is BatchQuota's state about gangs and waiting pods that is not
// quota arithmetic: when each gang began assembling, which released gangs
// back off, which pods wait for quota and why. It has no scheduler framework
// import, and every map in it has a way out (the plugin forgets entries when
// their pods or PodGroups go; tests check it).
package gang

import (
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Tracker remembers, per assembling gang ("namespace/name"), when its first
// member was reserved and how many were reserved at most (for the wait
// metric and the GangTimeout event), and when a released gang may try again.
type Tracker struct {
	mu       sync.Mutex
	attempts map[string]*attempt
	backoff  map[string]time.Time
}

type attempt struct {
	start time.Time
	peak  int
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{attempts: map[string]*attempt{}, backoff: map[string]time.Time{}}
}

// Reserved records that a gang has members reserved at now.
func (t *Tracker) Reserved(key string, members int, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.attempts[key]
	if a == nil {
		a = &attempt{start: now}
		t.attempts[key] = a
	}
	if members > a.peak {
		a.peak = members
	}
}

// Completed forgets a gang that reached minMember and returns when it began.
func (t *Tracker) Completed(key string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.attempts[key]
	if a == nil {
		return time.Time{}, false
	}
	delete(t.attempts, key)
	return a.start, true
}

// Release forgets a gang whose members were all released before it
// completed, and returns how many had been reserved.
func (t *Tracker) Release(key string) (int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.attempts[key]
	if a == nil {
		return 0, false
	}
	delete(t.attempts, key)
	return a.peak, true
}

// BackOff keeps a released gang from trying again before until.
func (t *Tracker) BackOff(key string, until time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.backoff[key] = until
}

// BackingOff returns until when a gang waits after a release, if it still does.
func (t *Tracker) BackingOff(key string, now time.Time) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	until, ok := t.backoff[key]
	if !ok {
		return time.Time{}, false
	}
	if !now.Before(until) {
		delete(t.backoff, key)
		return time.Time{}, false
	}
	return until, true
}

// Forget drops everything about a gang (its PodGroup was deleted).
func (t *Tracker) Forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.attempts, key)
	delete(t.backoff, key)
}

// Len is how many gangs the tracker remembers anything about.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := map[string]bool{}
	for k := range t.attempts {
		keys[k] = true
	}
	for k := range t.backoff {
		keys[k] = true
	}
	return len(keys)
}

// Blocked remembers the pods turned away for quota: the last reason given
// to each (so that a QuotaExceeded event is recorded when the reason
// changes, not on every attempt), and what would let it in (room in its own
// namespace, or in the cluster's guaranteed total), so that freed quota
// activates only the pods it can help.
type Blocked struct {
	mu   sync.Mutex
	pods map[types.UID]*blocked
}

type blocked struct {
	pod       *v1.Pod
	reason    string
	aggregate bool
}

// NewBlocked returns an empty set.
func NewBlocked() *Blocked { return &Blocked{pods: map[types.UID]*blocked{}} }

// Changed records the reason for the pod and reports whether it differs
// from the last one recorded.
func (b *Blocked) Changed(pod *v1.Pod, reason string, aggregate bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.pods[pod.UID]
	if cur != nil && cur.reason == reason {
		cur.pod, cur.aggregate = pod, aggregate
		return false
	}
	b.pods[pod.UID] = &blocked{pod: pod, reason: reason, aggregate: aggregate}
	return true
}

// Forget drops a pod (placed or deleted).
func (b *Blocked) Forget(uid types.UID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.pods, uid)
}

// Aggregate reports whether the pod waits for the cluster's guaranteed
// total (rather than its own namespace's max).
func (b *Blocked) Aggregate(uid types.UID) (aggregate, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p := b.pods[uid]; p != nil {
		return p.aggregate, true
	}
	return false, false
}

// Freed returns, keyed as the framework's Activate wants them, the pods that
// quota freed in namespace ns can help: those of ns, and, when ns has a
// quota (limited), those waiting for the guaranteed total.
func (b *Blocked) Freed(ns string, limited bool) map[string]*v1.Pod {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]*v1.Pod{}
	for _, p := range b.pods {
		if p.pod.Namespace == ns || (limited && p.aggregate) {
			out[p.pod.Namespace+"/"+p.pod.Name] = p.pod
		}
	}
	return out
}

// Len is how many pods are remembered.
func (b *Blocked) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pods)
}

// Short remembers, per gang ("namespace/name"), the members turned away
// because the gang had fewer pods than its minMember. Only another member
// (created, or its scheduling gates removed) can let them in, and
// kube-scheduler runs no queueing hint for an unscheduled pod's creation:
// the plugin takes them when a new member brings the gang to minMember.
type Short struct {
	mu    sync.Mutex
	gangs map[string]map[types.UID]*v1.Pod
	keys  map[types.UID]string
}

// NewShort returns an empty set.
func NewShort() *Short {
	return &Short{gangs: map[string]map[types.UID]*v1.Pod{}, keys: map[types.UID]string{}}
}

// Add remembers pod as a member of gang key turned away for too few pods.
func (s *Short) Add(key string, pod *v1.Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forget(pod.UID)
	if s.gangs[key] == nil {
		s.gangs[key] = map[types.UID]*v1.Pod{}
	}
	s.gangs[key][pod.UID] = pod
	s.keys[pod.UID] = key
}

// Waiting reports whether any member of gang key is remembered.
func (s *Short) Waiting(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.gangs[key]) > 0
}

// Take returns gang key's members, keyed as the framework's Activate wants
// them, and forgets them.
func (s *Short) Take(key string) map[string]*v1.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]*v1.Pod{}
	for uid, p := range s.gangs[key] {
		out[p.Namespace+"/"+p.Name] = p
		delete(s.keys, uid)
	}
	delete(s.gangs, key)
	return out
}

// Forget drops a pod (reserved, placed or deleted).
func (s *Short) Forget(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forget(uid)
}

func (s *Short) forget(uid types.UID) {
	key, ok := s.keys[uid]
	if !ok {
		return
	}
	delete(s.keys, uid)
	if delete(s.gangs[key], uid); len(s.gangs[key]) == 0 {
		delete(s.gangs, key)
	}
}

// ForgetGang drops a gang's members (its PodGroup was deleted).
func (s *Short) ForgetGang(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for uid := range s.gangs[key] {
		delete(s.keys, uid)
	}
	delete(s.gangs, key)
}

// Len is how many pods are remembered.
func (s *Short) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

// Early holds the pods turned away before the quota counts were complete.
type Early struct {
	mu   sync.Mutex
	pods map[string]*v1.Pod
}

// NewEarly returns an empty set.
func NewEarly() *Early { return &Early{pods: map[string]*v1.Pod{}} }

// Add remembers a pod.
func (e *Early) Add(pod *v1.Pod) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pods[pod.Namespace+"/"+pod.Name] = pod
}

// Take returns the pods and forgets them.
func (e *Early) Take() map[string]*v1.Pod {
	e.mu.Lock()
	defer e.mu.Unlock()
	pods := e.pods
	e.pods = map[string]*v1.Pod{}
	return pods
}

// Set is a set of UIDs safe for concurrent use.
type Set struct {
	mu  sync.Mutex
	set map[types.UID]bool
}

// NewSet returns an empty set.
func NewSet() *Set { return &Set{set: map[types.UID]bool{}} }

// Insert adds uid and reports whether it was new.
func (s *Set) Insert(uid types.UID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set[uid] {
		return false
	}
	s.set[uid] = true
	return true
}

// Delete removes uid.
func (s *Set) Delete(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.set, uid)
}

// Len is the set's size.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.set)
}
