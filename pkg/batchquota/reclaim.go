package batchquota

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"time"

	v1 "k8s.io/api/core/v1"
	policy "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/preemption"
	schedutil "k8s.io/kubernetes/pkg/scheduler/util"

	"locus.dev/locus/pkg/batchquota/quota"
)

var _ preemption.Interface = &reclaimer{}

// PostFilter is Reclaim, and the quota-aware part of priority preemption.
// A pod whose quota is under its min (with the pod added) takes back its
// guaranteed share from quotas that borrow beyond their min: it preempts
// their pods, lowest priority first, never taking a quota below its min.
// Any quota pod may also preempt lower-priority pods of its own namespace or
// of namespaces without a quota: DefaultPreemption (which runs first) gives
// up on nodes where pods of other quotas sit too, since BatchQuota's Filter
// refuses dry runs that take them outside the reclaim rules. The framework's
// preemption evaluator picks the node and deletes the victims.
//
// Pods without a quota get a plain Unschedulable: their priority
// preemption is DefaultPreemption's.
func (pl *BatchQuota) PostFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, m framework.NodeToStatusReader) (*framework.PostFilterResult, *fwk.Status) {
	s, err := getState(state)
	if err != nil {
		// PreFilter stopped before reading the pod: quota counts are not
		// rebuilt yet after a start (the pod comes back once they are), or
		// another plugin rejected the pod for good.
		if !pl.HasSynced() {
			pl.early.Add(pod)
		}
		return nil, fwk.NewStatus(fwk.Unschedulable)
	}
	pl.recordWaiting(pod, s)
	names := pl.cache.QuotaNames(pod.Namespace)
	if s.noGroup != "" || len(names) == 0 {
		// Reclaim is for quotas; this pod waits for something else.
		return nil, fwk.NewStatus(fwk.Unschedulable)
	}
	quotaName := pod.Namespace + "/" + names[0]
	if s.rejection != nil {
		quotaName = s.rejection.Quota
	}
	logger := klog.FromContext(ctx)
	delta, _ := pl.cache.Delta(pod.Namespace, s.req, s.gang)
	gone := append(pl.terminatingBorrowers(pod.Namespace), pl.reclaimed().List(time.Now())...)
	view := pl.cache.ReclaimView(pod.Namespace, s.gang, gone, pl.claimedByNominated(pod))
	// Under its min, the pod may take back what other quotas borrow; beyond
	// it, only lower-priority pods of its own namespace or of namespaces
	// without a quota (priority preemption that DefaultPreemption could not
	// do on nodes where pods of other quotas sit too).
	underMin := pl.cache.UnderMin(pod.Namespace, delta) && view.UnderMin(pod.Namespace, delta)
	if !underMin {
		logger.V(4).Info("pod does not reclaim: its quota is not under its min", "pod", klog.KObj(pod), "quota", quotaName)
	}
	reclaimed := pl.reclaimed()
	r := &reclaimer{handle: pl.handle, view: view, req: s.req, gang: s.gang, reclaimed: reclaimed,
		ns: pod.Namespace, priority: corev1helpers.PodPriority(pod), underMin: underMin,
		notUnderMin: fmt.Sprintf(ErrReasonNotUnderMinFmt, quotaName)}
	ev := preemption.NewEvaluator(Name, pl.handle, r, false)
	preempt := ev.PreemptPod
	ev.PreemptPod = func(ctx context.Context, c preemption.Candidate, preemptor, victim *v1.Pod, plugin string) error {
		if err := preempt(ctx, c, preemptor, victim, plugin); err != nil {
			return err
		}
		reclaimed.Add(victim.UID, time.Now())
		return nil
	}
	result, status := ev.Preempt(ctx, state, pod, m)
	if status.IsSuccess() {
		logger.V(4).Info("pod reclaims its quota's min", "pod", klog.KObj(pod), "node", result.NominatingInfo.NominatedNodeName)
	}
	if msg := status.Message(); msg != "" && status.Code() != fwk.Error {
		status = fwk.NewStatus(status.Code(), "reclaim: "+msg)
	}
	return result, status
}

// terminatingBorrowers lists the counted pods of other borrowing quotas that
// are terminating: victims of an earlier preemption that still count as
// used. The view treats them as gone, so that two preemptors never each
// take a quota down to its min.
func (pl *BatchQuota) terminatingBorrowers(ns string) []types.UID {
	var uids []types.UID
	for _, st := range pl.cache.Snapshot() {
		if st.Namespace == ns || len(st.Borrowed()) == 0 {
			continue
		}
		pods, err := pl.pods.Pods(st.Namespace).List(labels.Everything())
		if err != nil {
			continue
		}
		for _, p := range pods {
			if p.DeletionTimestamp != nil && p.Spec.NodeName != "" {
				uids = append(uids, p.UID)
			}
		}
	}
	return uids
}

// claimedByNominated sums the requests of the pod's namespace's pods that
// are nominated to a node (after preempting there) but not counted yet, and
// that would be scheduled before this one. They hold part of the min.
func (pl *BatchQuota) claimedByNominated(pod *v1.Pod) quota.Resources {
	claimed := quota.Resources{}
	nodes, err := pl.handle.SnapshotSharedLister().NodeInfos().List()
	if err != nil {
		return claimed
	}
	prio := corev1helpers.PodPriority(pod)
	for _, n := range nodes {
		for _, pi := range pl.handle.NominatedPodsForNode(n.Node().Name) {
			p := pi.GetPod()
			if p.Namespace == pod.Namespace && p.UID != pod.UID && corev1helpers.PodPriority(p) >= prio && !pl.cache.HasPod(p.UID) {
				claimed.Add(podRequests(p))
			}
		}
	}
	return claimed
}

func (pl *BatchQuota) reclaimed() *quota.Reclaimed { return pl.reclaimedPods }

// reclaimer is the preemption.Interface of one PostFilter call.
type reclaimer struct {
	handle    framework.Handle
	view      *quota.ReclaimView
	req       quota.Resources
	gang      *quota.Gang
	reclaimed *quota.Reclaimed
	// ns and priority are the preemptor's; underMin says whether its quota
	// stays under its min with it, so that it may reclaim.
	ns          string
	priority    int32
	underMin    bool
	notUnderMin string
}

// GetOffsetAndNumCandidates dry-runs, like DefaultPreemption, a tenth of the
// nodes but at least 100, from a random offset.
func (r *reclaimer) GetOffsetAndNumCandidates(n int32) (int32, int32) {
	return rand.Int31n(n), min(max(n/10, 100), n)
}

func (r *reclaimer) CandidatesToVictimsMap(candidates []preemption.Candidate) map[string]*extenderv1.Victims {
	m := make(map[string]*extenderv1.Victims, len(candidates))
	for _, c := range candidates {
		m[c.Name()] = c.Victims()
	}
	return m
}

// OrderedScoreFuncs returns nil: the evaluator's default order picks the
// node whose most important victim is least important (lowest priority
// first), then fewest victims.
func (r *reclaimer) OrderedScoreFuncs(context.Context, map[string]*extenderv1.Victims) []func(string) int64 {
	return nil
}

// PodEligibleToPreemptOthers refuses pods with preemptionPolicy Never, and
// pods whose earlier victims on their nominated node are still terminating
// (or were preempted a moment ago and do not show it yet).
func (r *reclaimer) PodEligibleToPreemptOthers(_ context.Context, pod *v1.Pod, nominatedNodeStatus *fwk.Status) (bool, string) {
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == v1.PreemptNever {
		return false, "not eligible due to preemptionPolicy=Never."
	}
	nom := pod.Status.NominatedNodeName
	if nom == "" || nominatedNodeStatus.Code() == fwk.UnschedulableAndUnresolvable {
		return true, ""
	}
	if ni, _ := r.handle.SnapshotSharedLister().NodeInfos().Get(nom); ni != nil {
		for _, pi := range ni.GetPods() {
			if p := pi.GetPod(); terminatingByPreemption(p) || r.reclaimed.Has(p.UID) {
				return false, ErrReasonVictimsTerminating
			}
		}
	}
	return true, ""
}

// SelectVictimsOnNode picks the pods to preempt on one node, on copies of
// the node and the cycle state:
//  1. eligible pods (other quotas borrowing beyond min, not terminating,
//     not held at Permit) are taken lowest priority first for as long as
//     their quota stays at or above its min, and removed from the node;
//  2. the pod must then pass the Filter plugins and its quota admission
//     (evaluated on the view with the victims' usage removed: BatchQuota's
//     own PreFilter is not rerun);
//  3. as many as possible are put back, most important first (pods whose
//     PodDisruptionBudget would be violated before the others), as
//     DefaultPreemption does.
func (r *reclaimer) SelectVictimsOnNode(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo, pdbs []*policy.PodDisruptionBudget) ([]*v1.Pod, int, *fwk.Status) {
	logger := klog.FromContext(ctx)
	// Reclaim judges quota itself (the view above): BatchQuota's own quota
	// Filter stands aside in this node's copy of the cycle state.
	reclaiming(state)
	var eligible, going []fwk.PodInfo
	for _, pi := range nodeInfo.GetPods() {
		switch p := pi.GetPod(); {
		case p.DeletionTimestamp != nil || r.reclaimed.Has(p.UID):
			going = append(going, pi)
		case r.eligible(p, pod.Namespace):
			eligible = append(eligible, pi)
		}
	}
	if len(eligible) == 0 {
		if !r.underMin {
			return nil, 0, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, r.notUnderMin)
		}
		return nil, 0, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ErrReasonNoBorrowers)
	}
	removePod := func(pi fwk.PodInfo) error {
		if err := nodeInfo.RemovePod(logger, pi.GetPod()); err != nil {
			return err
		}
		return r.handle.RunPreFilterExtensionRemovePod(ctx, state, pod, pi, nodeInfo).AsError()
	}
	addPod := func(pi fwk.PodInfo) error {
		nodeInfo.AddPodInfo(pi)
		return r.handle.RunPreFilterExtensionAddPod(ctx, state, pod, pi, nodeInfo).AsError()
	}

	// Pods on their way out (terminating, or preempted a moment ago) leave
	// their room to the pods nominated here and then to this one; they are
	// never victims again, and the view already counts them as gone.
	for _, pi := range going {
		if err := removePod(pi); err != nil {
			return nil, 0, fwk.AsStatus(err)
		}
	}

	// 1. Lowest priority first, within each victim quota's borrowing.
	sort.SliceStable(eligible, func(i, j int) bool {
		return schedutil.MoreImportantPod(eligible[j].GetPod(), eligible[i].GetPod())
	})
	removed := map[types.UID]quota.Victim{}
	var floor *quota.Rejection
	var taken []fwk.PodInfo
	for _, pi := range eligible {
		v := victimOf(pi.GetPod())
		if rej := r.view.KeepsMin(pod.Namespace, r.req, r.reclaims(append(victimList(removed), v))); rej != nil {
			floor = rej
			continue
		}
		if err := removePod(pi); err != nil {
			return nil, 0, fwk.AsStatus(err)
		}
		removed[pi.GetPod().UID] = v
		taken = append(taken, pi)
	}
	if len(taken) == 0 {
		return nil, 0, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, floor.Message)
	}

	// 2. The pod must fit with all of them gone.
	if st := r.handle.RunFilterPluginsWithNominatedPods(ctx, state, pod, nodeInfo); !st.IsSuccess() {
		if floor != nil {
			// Say why no more pods were taken.
			return nil, 0, fwk.NewStatus(st.Code(), append(st.Reasons(), floor.Message)...)
		}
		return nil, 0, st
	}
	if rej := r.view.Admit(pod.Namespace, r.req, r.gang, victimList(removed)); rej != nil {
		return nil, 0, fwk.NewStatus(fwk.Unschedulable, rej.Message)
	}

	// 3. Reprieve, most important first.
	sort.SliceStable(taken, func(i, j int) bool {
		return schedutil.MoreImportantPod(taken[i].GetPod(), taken[j].GetPod())
	})
	violating, nonViolating := podsViolatingPDBs(taken, pdbs)
	var victims []*v1.Pod
	reprieve := func(pi fwk.PodInfo) (bool, error) {
		uid := pi.GetPod().UID
		v := removed[uid]
		if err := addPod(pi); err != nil {
			return false, err
		}
		delete(removed, uid)
		if r.handle.RunFilterPluginsWithNominatedPods(ctx, state, pod, nodeInfo).IsSuccess() &&
			r.view.Admit(pod.Namespace, r.req, r.gang, victimList(removed)) == nil {
			return true, nil
		}
		if err := removePod(pi); err != nil {
			return false, err
		}
		removed[uid] = v
		victims = append(victims, pi.GetPod())
		logger.V(5).Info("reclaim victim", "pod", klog.KObj(pi.GetPod()), "node", klog.KObj(nodeInfo.Node()), "preemptor", klog.KObj(pod))
		return false, nil
	}
	numViolating := 0
	for _, pi := range violating {
		kept, err := reprieve(pi)
		if err != nil {
			return nil, 0, fwk.AsStatus(err)
		}
		if !kept {
			numViolating++
		}
	}
	for _, pi := range nonViolating {
		if _, err := reprieve(pi); err != nil {
			return nil, 0, fwk.AsStatus(err)
		}
	}
	if len(victims) == 0 {
		// Not Success: the evaluator takes a candidate without victims for an error.
		return nil, 0, fwk.NewStatus(fwk.Unschedulable, ErrReasonFitsWithoutVictims)
	}
	sort.SliceStable(victims, func(i, j int) bool { return schedutil.MoreImportantPod(victims[i], victims[j]) })
	return victims, numViolating, nil
}

// eligible says whether the pod may take p (not on its way out, not held
// at Permit: rejecting a waiting gang member releases its whole gang, more
// than a dry run accounts for): a lower-priority pod of its own namespace or
// of a namespace without a quota; or, while its quota is under its min, a
// pod of another quota that borrows beyond its min in a resource the pod
// asks for (reclaim, whatever that pod's priority).
func (r *reclaimer) eligible(p *v1.Pod, ns string) bool {
	if r.handle.GetWaitingPod(p.UID) != nil {
		return false
	}
	if p.Namespace == ns || !r.view.Limited(p.Namespace) {
		return corev1helpers.PodPriority(p) < r.priority
	}
	return r.underMin && r.view.Borrowing(p.Namespace, r.req)
}

// reclaims keeps the victims that reclaim rules govern: those of other quotas.
func (r *reclaimer) reclaims(victims []quota.Victim) []quota.Victim {
	out := victims[:0:0]
	for _, v := range victims {
		if v.Namespace != r.ns && r.view.Limited(v.Namespace) {
			out = append(out, v)
		}
	}
	return out
}

func victimOf(p *v1.Pod) quota.Victim {
	return quota.Victim{Namespace: p.Namespace, Req: podRequests(p)}
}

func victimList(m map[types.UID]quota.Victim) []quota.Victim {
	out := make([]quota.Victim, 0, len(m)+1)
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// terminatingByPreemption: the pod is being deleted by a scheduler's preemption.
func terminatingByPreemption(p *v1.Pod) bool {
	if p.DeletionTimestamp == nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == v1.DisruptionTarget {
			return c.Status == v1.ConditionTrue && c.Reason == v1.PodReasonPreemptionByScheduler
		}
	}
	return false
}

// podsViolatingPDBs splits pods (keeping their order) into those whose
// preemption would exceed a PodDisruptionBudget's allowed disruptions and
// the rest, as DefaultPreemption does.
func podsViolatingPDBs(pods []fwk.PodInfo, pdbs []*policy.PodDisruptionBudget) (violating, nonViolating []fwk.PodInfo) {
	allowed := make([]int32, len(pdbs))
	for i, pdb := range pdbs {
		allowed[i] = pdb.Status.DisruptionsAllowed
	}
	for _, pi := range pods {
		p := pi.GetPod()
		violates := false
		for i, pdb := range pdbs {
			if pdb.Namespace != p.Namespace || len(p.Labels) == 0 {
				continue
			}
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil || sel.Empty() || !sel.Matches(labels.Set(p.Labels)) {
				continue
			}
			if _, disrupted := pdb.Status.DisruptedPods[p.Name]; disrupted {
				continue
			}
			allowed[i]--
			if allowed[i] < 0 {
				violates = true
			}
		}
		if violates {
			violating = append(violating, pi)
		} else {
			nonViolating = append(nonViolating, pi)
		}
	}
	return violating, nonViolating
}
