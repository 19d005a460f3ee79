package quota

import "testing"

// A bound pod ran under the gang it was placed with. Once that PodGroup is
// deleted (or replaced), the pod never counts toward a later PodGroup of the
// same name, even when the plugin offers it as a member (its
// creationTimestamp, of a one-second resolution, not before the new
// PodGroup's), and it does not mark the new gang complete.
func TestBoundPodsDoNotJoinARecreatedGang(t *testing.T) {
	c := NewCache()
	old := &Gang{Name: "g", MinMember: 2, UID: "old"}
	c.AddBoundPod("o1", "a", cpu(1), old)
	c.AddBoundPod("o2", "a", cpu(1), old)
	c.DropGang("a", "g") // the PodGroup is deleted

	fresh := &Gang{Name: "g", MinMember: 2, UID: "new"}
	c.AddBoundPod("o1", "a", cpu(1), fresh)
	if n, complete := c.GangMembers("a", "g"); n != 0 || complete {
		t.Fatalf("new gang: %d members, complete %v, from the earlier run's pods; want none", n, complete)
	}
	c.AddPod("n1", "a", cpu(1), fresh)
	c.AddBoundPod("o2", "a", cpu(1), fresh)
	if n, complete := c.GangMembers("a", "g"); n != 1 || complete {
		t.Errorf("new gang: %d members, complete %v; want 1 (its own), not complete", n, complete)
	}
	if !c.Used("a").Equal(cpu(3)) {
		t.Errorf("used %v, want the earlier run's pods still counted", c.Used("a"))
	}

	// A PodGroup replaced (another UID seen without a delete) detaches too.
	c2 := NewCache()
	c2.AddBoundPod("o1", "a", cpu(1), old)
	c2.SetGang("a", fresh)
	c2.AddBoundPod("o1", "a", cpu(1), fresh)
	if n, _ := c2.GangMembers("a", "g"); n != 0 {
		t.Errorf("replaced gang: %d members from the earlier run", n)
	}
	// A pod never seen under another gang still joins (bound before its
	// PodGroup reached the scheduler).
	c2.AddBoundPod("late", "a", cpu(1), fresh)
	if n, _ := c2.GangMembers("a", "g"); n != 1 {
		t.Errorf("a bound member new to the cache: %d members, want 1", n)
	}
}
