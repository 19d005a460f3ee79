package plugins

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2/ktesting"

	"locus.dev/locus/pkg/leader"
)

// fakeLock is a resourcelock.Interface that records what it is asked to
// write and fails every write with err.
type fakeLock struct {
	identity string
	err      error
	record   *resourcelock.LeaderElectionRecord
	writes   []string
	events   []string
}

func (f *fakeLock) Get(context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	return f.record, []byte("raw"), nil
}

func (f *fakeLock) Create(_ context.Context, ler resourcelock.LeaderElectionRecord) error {
	f.writes = append(f.writes, "create "+ler.HolderIdentity)
	return f.err
}

func (f *fakeLock) Update(_ context.Context, ler resourcelock.LeaderElectionRecord) error {
	f.writes = append(f.writes, "update "+ler.HolderIdentity)
	return f.err
}

func (f *fakeLock) RecordEvent(s string) { f.events = append(f.events, s) }
func (f *fakeLock) Identity() string     { return f.identity }
func (f *fakeLock) Describe() string     { return "kube-system/locus-scheduler" }

func TestLeadingLock(t *testing.T) {
	const me, other = "host_me", "host_other"
	errConflict := errors.New("the object has been modified")
	tests := []struct {
		name     string
		create   bool // Create, else Update
		holder   string
		err      error
		wantLead bool
	}{
		{name: "create naming this process", create: true, holder: me, wantLead: true},
		{name: "update naming this process", holder: me, wantLead: true},
		{name: "create naming another process", create: true, holder: other},
		{name: "update naming another process", holder: other},
		{name: "release (empty holder)", holder: ""},
		{name: "create fails", create: true, holder: me, err: errConflict},
		{name: "update fails", holder: me, err: errConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			fake := &fakeLock{identity: me, err: tc.err}
			elected := leader.New()
			lock := watchLock(fake, elected)

			ler := resourcelock.LeaderElectionRecord{HolderIdentity: tc.holder, LeaseDurationSeconds: 15}
			var err error
			want := "update " + tc.holder
			if tc.create {
				err = lock.Create(ctx, ler)
				want = "create " + tc.holder
			} else {
				err = lock.Update(ctx, ler)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("error %v, want %v", err, tc.err)
			}
			if diff := cmp.Diff([]string{want}, fake.writes); diff != "" {
				t.Errorf("writes to the wrapped lock (-want,+got):\n%s", diff)
			}
			if got := elected.IsLeader(); got != tc.wantLead {
				t.Errorf("IsLeader() = %v, want %v", got, tc.wantLead)
			}
		})
	}
}

// TestLeadingLockDelegates: what the wrapper does not watch is the wrapped
// lock's, and reading the record never leads, even when it names this
// process (coordinated leader election leads only after its own renewal).
func TestLeadingLockDelegates(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	fake := &fakeLock{identity: "host_me", record: &resourcelock.LeaderElectionRecord{HolderIdentity: "host_me"}}
	elected := leader.New()
	lock := watchLock(fake, elected)

	rec, raw, err := lock.Get(ctx)
	if err != nil || rec != fake.record || string(raw) != "raw" {
		t.Errorf("Get() = %v, %q, %v; want the wrapped lock's record", rec, raw, err)
	}
	lock.RecordEvent("became leader")
	if diff := cmp.Diff([]string{"became leader"}, fake.events); diff != "" {
		t.Errorf("events (-want,+got):\n%s", diff)
	}
	if got := lock.Identity(); got != "host_me" {
		t.Errorf("Identity() = %q, want host_me", got)
	}
	if got := lock.Describe(); got != "kube-system/locus-scheduler" {
		t.Errorf("Describe() = %q", got)
	}
	if elected.IsLeader() {
		t.Error("reading a record leads")
	}
}
