package plugins

import (
	"context"

	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"locus.dev/locus/pkg/leader"
)

// leadingLock is a leader lock that tells elected when this process starts
// leading. client-go's LeaderElector leads from the first successful Create
// or Update of a record that names the lock's own identity (acquiring, and
// in coordinated leader election the first renewal of a lease the
// coordinator gave it); every renewal writes the same record again, and
// Lead is idempotent. Releasing writes an empty holder, and kube-scheduler
// exits when it stops leading, so leadership never has to be taken back.
// Everything else is the wrapped lock's.
type leadingLock struct {
	resourcelock.Interface
	elected *leader.Elected
}

// watchLock wraps lock so that elected leads once the lock is held.
func watchLock(lock resourcelock.Interface, elected *leader.Elected) resourcelock.Interface {
	return &leadingLock{Interface: lock, elected: elected}
}

// Create creates the record and leads if it names this process.
func (l *leadingLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	if err := l.Interface.Create(ctx, ler); err != nil {
		return err
	}
	l.observe(ler)
	return nil
}

// Update updates the record and leads if it names this process.
func (l *leadingLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	if err := l.Interface.Update(ctx, ler); err != nil {
		return err
	}
	l.observe(ler)
	return nil
}

func (l *leadingLock) observe(ler resourcelock.LeaderElectionRecord) {
	if ler.HolderIdentity != "" && ler.HolderIdentity == l.Identity() {
		l.elected.Lead()
	}
}
