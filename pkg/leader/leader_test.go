package leader

import "testing"

func TestElected(t *testing.T) {
	e := New()
	if e.IsLeader() {
		t.Fatal("a new Elected leads before Lead")
	}
	select {
	case <-e.Leading():
		t.Fatal("Leading is closed before Lead")
	default:
	}
	e.Lead()
	e.Lead() // idempotent
	if !e.IsLeader() {
		t.Fatal("Elected does not lead after Lead")
	}
	<-e.Leading()
	if !Always().IsLeader() {
		t.Fatal("Always does not lead")
	}
	var none *Elected
	if !none.IsLeader() {
		t.Fatal("a nil Elected (no leader election) does not lead")
	}
}
