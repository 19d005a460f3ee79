package testenv

import (
	"fmt"
	"os"
	"sync"

	"k8s.io/klog/v2"
)

// Process lets a program that is not a test (the sandbox, the demo) use the
// control plane. Fatal errors run the cleanups and exit the process.
type Process struct {
	name     string
	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

var _ TB = &Process{}

// NewProcess returns a TB for a program named name.
func NewProcess(name string) *Process { return &Process{name: name} }

// Close runs the cleanups, last registered first.
func (p *Process) Close() {
	p.mu.Lock()
	cleanups := p.cleanups
	p.cleanups = nil
	p.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
}

func (p *Process) Cleanup(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cleanups = append(p.cleanups, f)
}
func (p *Process) Error(args ...any) { p.Log(args...); p.Fail() }
func (p *Process) Errorf(format string, args ...any) {
	p.Logf(format, args...)
	p.Fail()
}
func (p *Process) Fail() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failed = true
}
func (p *Process) FailNow() {
	p.Close()
	os.Exit(1)
}
func (p *Process) Failed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}
func (p *Process) Fatal(args ...any) {
	fmt.Fprintln(os.Stderr, append([]any{p.name + ":"}, args...)...)
	p.FailNow()
}
func (p *Process) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, p.name+": "+format+"\n", args...)
	p.FailNow()
}
func (p *Process) Helper() {}

// Log and Logf go to klog, wherever the program sends it.
func (p *Process) Log(args ...any)                 { klog.InfoDepth(1, args...) }
func (p *Process) Logf(format string, args ...any) { klog.InfofDepth(1, format, args...) }
func (p *Process) Name() string                    { return p.name }
func (p *Process) Setenv(key, value string)        { _ = os.Setenv(key, value) }
func (p *Process) Skip(args ...any)                { p.Log(args...) }
func (p *Process) SkipNow()                        {}
func (p *Process) Skipf(format string, args ...any) {
	p.Logf(format, args...)
}
func (p *Process) Skipped() bool { return false }

// TempDir makes a directory that Close removes.
func (p *Process) TempDir() string {
	dir, err := os.MkdirTemp("", p.name+"-")
	if err != nil {
		p.Fatalf("temp dir: %v", err)
	}
	p.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
