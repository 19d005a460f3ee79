package batchquota

import (
	"context"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/helper"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

// siblingZones counts a gang's placed members per zone.
type siblingZones map[string]int64

// Clone returns the state itself: it is read-only after PreScore.
func (s siblingZones) Clone() fwk.StateData { return s }

// PreScore finds the zones where the pod's gang siblings already sit: bound
// ones from the pod lister, and ones waiting in Permit on their chosen node
// (the waiting copy carries the node). Both come from the gang's own pods,
// so the work grows with the gang, not with the cluster's waiting pods.
func (pl *BatchQuota) PreScore(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) *fwk.Status {
	gang := pod.Labels[schedv1alpha1.PodGroupLabel]
	if gang == "" {
		return fwk.NewStatus(fwk.Skip)
	}
	nodeZone := func(name string) string {
		ni, err := pl.handle.SnapshotSharedLister().NodeInfos().Get(name)
		if err != nil {
			return ""
		}
		return ni.Node().Labels[v1.LabelTopologyZone]
	}
	zones := siblingZones{}
	for _, p := range pl.groupPods(pod.Namespace, gang) {
		if p.UID == pod.UID {
			continue
		}
		node := p.Spec.NodeName
		if node == "" {
			wp := pl.handle.GetWaitingPod(p.UID)
			if wp == nil {
				continue
			}
			node = wp.GetPod().Spec.NodeName
		}
		if node == "" {
			continue
		}
		if z := nodeZone(node); z != "" {
			zones[z]++
		}
	}
	if len(zones) == 0 {
		return fwk.NewStatus(fwk.Skip)
	}
	cycleState.Write(preScoreStateKey, zones)
	return nil
}

// Score is the number of siblings in the node's zone.
func (pl *BatchQuota) Score(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	c, err := cycleState.Read(preScoreStateKey)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	return c.(siblingZones)[nodeInfo.Node().Labels[v1.LabelTopologyZone]], nil
}

// NormalizeScore maps sibling counts to 0..100.
func (pl *BatchQuota) NormalizeScore(_ context.Context, _ fwk.CycleState, _ *v1.Pod, scores framework.NodeScoreList) *fwk.Status {
	return helper.DefaultNormalizeScore(framework.MaxNodeScore, false, scores)
}

// ScoreExtensions returns the plugin, for NormalizeScore.
func (pl *BatchQuota) ScoreExtensions() framework.ScoreExtensions { return pl }
