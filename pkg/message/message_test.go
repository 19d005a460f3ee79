package message

import (
	"strings"
	"testing"
)

func TestClip(t *testing.T) {
	if got := Clip("pci-dss"); got != "pci-dss" {
		t.Errorf("short value changed: %q", got)
	}
	long := strings.Repeat("é", 100) // 200 bytes, 2-byte runes
	got := Clip(long)
	if !strings.HasSuffix(got, "... (200 bytes)") || len(got) > maxQuoted+len("... (200 bytes)") {
		t.Errorf("Clip(200 bytes) = %q", got)
	}
	if !strings.HasPrefix(long, strings.TrimSuffix(got, "... (200 bytes)")) {
		t.Errorf("Clip cut inside a rune: %q", got)
	}
}

func TestList(t *testing.T) {
	if got := List([]string{"a", "b"}); got != "a, b" {
		t.Errorf("List = %q", got)
	}
	if got := List([]string{"a", "b", "c", "d", "e", "f", "g"}); got != "a, b, c, d, e and 2 more" {
		t.Errorf("List of 7 = %q", got)
	}
}
