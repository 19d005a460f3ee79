// Package leader tells locus's plugins whether their scheduler process is the
// leader. kube-scheduler builds its plugins before it runs leader election,
// so a plugin of a standby replica runs its informers and handlers like the
// leader's; anything it writes to the API server (status, cluster-level
// events) must wait until Leading is closed.
package leader

import "sync"

// Elected is one scheduler process's leadership: false until Lead is
// called, then true for the rest of the process (kube-scheduler exits when
// it loses the lease).
type Elected struct {
	once    sync.Once
	leading chan struct{}
}

// New returns an Elected that is not the leader yet.
func New() *Elected { return &Elected{leading: make(chan struct{})} }

// Always returns an Elected that leads from the start: a scheduler that runs
// without leader election.
func Always() *Elected {
	e := New()
	e.Lead()
	return e
}

// Lead marks the process as the leader. Calling it again does nothing.
func (e *Elected) Lead() { e.once.Do(func() { close(e.leading) }) }

// IsLeader reports whether the process leads. A nil Elected leads (no
// leader election).
func (e *Elected) IsLeader() bool {
	if e == nil {
		return true
	}
	select {
	case <-e.leading:
		return true
	default:
		return false
	}
}

// Leading is closed once the process leads.
func (e *Elected) Leading() <-chan struct{} { return e.leading }
