// Package message bounds what user-supplied values contribute to reasons,
// events and log lines.
package message

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Bounds on what an annotation's value contributes to a reason, an event or
// a log line. Annotations may hold up to 256 KiB; events longer than 1,024
// bytes are refused by the API server (the event is lost), and a reason is
// copied into the pod's status and the scheduler's log on every attempt.
const (
	// maxQuoted is the most bytes of one value quoted in a message.
	maxQuoted = 64
	// maxListed is the most names listed in a message.
	maxListed = 5
)

// Clip returns s cut to at most maxQuoted bytes (at a rune boundary), with
// an ellipsis and s's length when it was cut.
func Clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:cut], len(s))
}

// List joins names, each clipped, the first maxListed of them, and
// says how many more there are.
func List(names []string) string {
	shown := names
	if len(shown) > maxListed {
		shown = shown[:maxListed]
	}
	parts := make([]string, 0, len(shown))
	for _, n := range shown {
		parts = append(parts, Clip(n))
	}
	out := strings.Join(parts, ", ")
	if more := len(names) - len(shown); more > 0 {
		out += fmt.Sprintf(" and %d more", more)
	}
	return out
}
