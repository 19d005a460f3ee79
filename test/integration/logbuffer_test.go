package integration

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"
)

// logBuffer holds what the scheduler logs (through the context's logger)
// at up to verbosity 2, where kube-scheduler logs each unschedulable pod
// with its reason: tests read it to see what an operator would. It is not
// copied to the test's output (a 256 KiB line would flood it); a failed
// test gets its last lines, clipped.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the log lines that contain every one of substrs.
func (b *logBuffer) lines(substrs ...string) []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		ok := true
		for _, s := range substrs {
			ok = ok && strings.Contains(l, s)
		}
		if ok && l != "" {
			out = append(out, l)
		}
	}
	return out
}

// longest returns the length of the longest line that contains substr.
func (b *logBuffer) longest(substr string) int {
	n := 0
	for _, l := range b.lines(substr) {
		n = max(n, len(l))
	}
	return n
}

// waitFor waits until a line contains every one of substrs, and returns it.
func (b *logBuffer) waitFor(ctx context.Context, timeout time.Duration, substrs ...string) (string, error) {
	var line string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		if l := b.lines(substrs...); len(l) > 0 {
			line = l[0]
			return true, nil
		}
		return false, nil
	})
	return line, err
}

// bufferedContext returns ctx with a logger that writes into a logBuffer.
func bufferedContext(ctx context.Context, t *testing.T) (context.Context, *logBuffer) {
	b := &logBuffer{}
	logger := textlogger.NewLogger(textlogger.NewConfig(textlogger.Output(b), textlogger.Verbosity(2)))
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		lines := strings.Split(b.String(), "\n")
		if len(lines) > 200 {
			lines = lines[len(lines)-200:]
		}
		for _, l := range lines {
			if len(l) > 400 {
				l = l[:400] + "..."
			}
			t.Log(l)
		}
	})
	return klog.NewContext(ctx, logger), b
}
