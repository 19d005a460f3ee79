package compliance

import (
	"time"
)

// heldCert is one certification label of a node, parsed.
type heldCert struct {
	standard string
	forever  bool      // "true"
	until    time.Time // the first instant it is no longer valid; zero if invalid
}

// parseCertification reads a certification label's value: "true" (no
// expiry) or a date, valid through the end of that day, UTC. Anything else
// certifies nothing.
func parseCertification(standard, value string) heldCert {
	h := heldCert{standard: standard}
	if value == "true" {
		h.forever = true
	} else if y, m, d, ok := parseDay(value); ok {
		h.until = time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
	}
	return h
}

// parseDay reads a date in dateLayout (YYYY-MM-DD) and accepts exactly what
// time.Parse(dateLayout, value) accepts, without its cost: Filter and Score
// read dated certification labels on every node for every pod.
func parseDay(value string) (year int, month time.Month, day int, ok bool) {
	if len(value) != len(dateLayout) || value[4] != '-' || value[7] != '-' {
		return 0, 0, 0, false
	}
	num := func(s string) (int, bool) {
		n := 0
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
			n = n*10 + int(s[i]-'0')
		}
		return n, true
	}
	y, ok1 := num(value[0:4])
	m, ok2 := num(value[5:7])
	d, ok3 := num(value[8:10])
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 || d > daysIn(time.Month(m), y) {
		return 0, 0, 0, false
	}
	return y, time.Month(m), d, true
}

func daysIn(m time.Month, year int) int {
	// Day 0 of the next month is the last day of this one.
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// state is what the certification says at now.
func (h heldCert) state(now time.Time) CertState {
	switch {
	case h.forever:
		return CertValid
	case h.until.IsZero():
		return CertInvalid
	case now.Before(h.until):
		return CertValid
	default:
		return CertExpired
	}
}

// otherStandard is the metric label of a standard that no node carries: a
// pod can name any standard, and a label value per pod-supplied string
// would be an unbounded series.
const otherStandard = "other"
