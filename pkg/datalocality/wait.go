package datalocality

import (
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/message"
)

// The locality wait, like Spark's spark.locality.wait, steps through levels.
// A pod whose data exists at the levels L1 < L2 < ... (only levels at which
// some node of the cluster is near the data count) may, after waiting e
// since its first scheduling attempt, use nodes at level L(k+1) or closer,
// where k = floor(e / wait):
//
//	[0, wait)        only L1 (for data cached on a node: only that node)
//	[wait, 2*wait)   L1 or L2
//	...
//	[n*wait, ...)    any node
//
// Each level that exists gets the full wait, so a pod whose data sits on a
// node, in a zone and in a region waits at most three times the wait before
// it may run anywhere. A level where the data does not exist is skipped.

// LocalityWait returns the pod's locality wait: its annotation, else def.
// A value that is not a non-negative duration is an error naming it.
func LocalityWait(pod *v1.Pod, def time.Duration) (time.Duration, error) {
	value, ok := pod.Annotations[locusv1alpha1.AnnotationLocalityWait]
	if !ok {
		return def, nil
	}
	wait, err := time.ParseDuration(value)
	if err != nil || wait < 0 {
		return 0, fmt.Errorf(ErrReasonInvalidWaitFmt, locusv1alpha1.AnnotationLocalityWait, message.Clip(value))
	}
	return wait, nil
}

// Step is where a waiting pod stands: the farthest level it may use now,
// and how long until the next level opens (zero once any node is allowed).
type Step struct {
	Allowed Level
	Next    Level
	Left    time.Duration
}

// noWait is the step of a pod that may use any node.
var noWait = Step{Allowed: LevelNone, Next: LevelNone}

// StepAt returns the step of a pod whose data exists at the levels present
// (closest first), after it has waited elapsed of a wait per level.
func StepAt(present []Level, wait, elapsed time.Duration) Step {
	if wait <= 0 || len(present) == 0 {
		return noWait
	}
	k := int(elapsed / wait)
	if elapsed < 0 {
		k = 0
	}
	if k >= len(present) {
		return noWait
	}
	next := LevelNone
	if k+1 < len(present) {
		next = present[k+1]
	}
	return Step{Allowed: present[k], Next: next, Left: time.Duration(k+1)*wait - elapsed}
}

// Waiting says whether the step still keeps some nodes from the pod.
func (s Step) Waiting() bool { return s.Allowed < LevelNone }

// Reason is the Filter reason for a node farther than the step allows, e.g.
// "locality wait: 4.2s left for node-level locality, then zone".
func (s Step) Reason() string {
	next := s.Next.String()
	if s.Next == LevelNone {
		next = "any node"
	}
	return fmt.Sprintf(ErrReasonWaitingFmt, s.Left.Round(100*time.Millisecond), s.Allowed, next)
}

// presentLevels returns the levels, closest first, at which at least one of
// the nodes is near the data. Data on a node that no longer exists does not
// make a pod wait.
func presentLevels(d *Data, nodes []fwk.NodeInfo) []Level {
	var has [LevelNone]bool
	// The levels at which the data is declared bound how many can be found.
	declared := 0
	for _, n := range []int{len(d.Nodes) + len(d.Hostnames), len(d.Zones), len(d.Regions)} {
		if n > 0 {
			declared++
		}
	}
	found := 0
	for _, ni := range nodes {
		if found == declared {
			break
		}
		if l := d.LevelOf(ni.Node()); l < LevelNone && !has[l] {
			has[l] = true
			found++
		}
	}
	var present []Level
	for l := LevelNode; l < LevelNone; l++ {
		if has[l] {
			present = append(present, l)
		}
	}
	return present
}
