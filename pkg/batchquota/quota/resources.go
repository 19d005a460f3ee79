// Package quota is BatchQuota's bookkeeping: per-namespace used, the
// ElasticQuotas that limit each namespace (min, max, borrowing from the
// cluster's guaranteed total), and the quota that gangs hold while they
// assemble. It has no scheduler framework import, so it is tested on its own
// and under the race detector.
//
// The arithmetic is total: amounts are never negative, a zero amount is never
// kept, nil Resources act as empty ones, and sums saturate at MaxInt64
// instead of overflowing (a request times minMember, in milli-bytes, can
// exceed int64).
package quota

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Resources are amounts in milli-units (MilliValue), by resource name. The
// arithmetic below keeps them positive: no zero or negative entries.
type Resources map[v1.ResourceName]int64

// Saturated is the amount that stands for "more than int64 can count".
const Saturated = math.MaxInt64

var maxMilli = resource.NewMilliQuantity(Saturated, resource.DecimalSI)

// milli converts a quantity into milli-units, saturating at Saturated and
// clamping negative amounts to zero.
func milli(q resource.Quantity) int64 {
	if q.Sign() <= 0 {
		return 0
	}
	if q.Cmp(*maxMilli) >= 0 {
		return Saturated
	}
	return q.MilliValue()
}

// FromList converts a pod's requests. Zero and negative amounts are left
// out: they count for nothing.
func FromList(l v1.ResourceList) Resources {
	r := make(Resources, len(l))
	for name, q := range l {
		if m := milli(q); m > 0 {
			r[name] = m
		}
	}
	return r
}

// LimitsFromList converts a quota's min or max. Unlike FromList it keeps
// zero amounts, since a quota that names a resource limits it (max 0 admits
// none of it); negative amounts count as zero.
func LimitsFromList(l v1.ResourceList) Resources {
	r := make(Resources, len(l))
	for name, q := range l {
		r[name] = milli(q)
	}
	return r
}

// ToList converts back to a ResourceList.
func (r Resources) ToList() v1.ResourceList {
	l := make(v1.ResourceList, len(r))
	for name, v := range r {
		l[name] = *Quantity(name, v)
	}
	return l
}

// Quantity renders a milli-amount of a resource in its usual format.
func Quantity(name v1.ResourceName, milli int64) *resource.Quantity {
	if name == v1.ResourceCPU {
		return resource.NewMilliQuantity(milli, resource.DecimalSI)
	}
	if milli%1000 == 0 {
		format := resource.DecimalSI
		if name == v1.ResourceMemory || name == v1.ResourceEphemeralStorage || strings.HasPrefix(string(name), v1.ResourceHugePagesPrefix) {
			format = resource.BinarySI
		}
		return resource.NewQuantity(milli/1000, format)
	}
	return resource.NewMilliQuantity(milli, resource.DecimalSI)
}

// addSat adds two non-negative amounts, saturating at Saturated.
func addSat(a, b int64) int64 {
	if a > Saturated-b {
		return Saturated
	}
	return a + b
}

// mulSat multiplies a non-negative amount by n >= 0, saturating.
func mulSat(a, n int64) int64 {
	if a == 0 || n == 0 {
		return 0
	}
	if a > Saturated/n {
		return Saturated
	}
	return a * n
}

// Add adds o to r, allocating r if it is nil. Sums saturate.
func (r *Resources) Add(o Resources) {
	for name, v := range o {
		if v <= 0 {
			continue
		}
		if *r == nil {
			*r = Resources{}
		}
		(*r)[name] = addSat((*r)[name], v)
	}
}

// Sub subtracts o from r, never going below zero and dropping entries that
// reach it. It reports whether an amount of r was saturated before the
// subtraction, in which case the result is a lower bound and the caller must
// recount.
func (r *Resources) Sub(o Resources) (wasSaturated bool) {
	for name, v := range o {
		cur, ok := (*r)[name]
		if !ok || v <= 0 {
			continue
		}
		if cur == Saturated {
			wasSaturated = true
		}
		if cur <= v {
			delete(*r, name)
			continue
		}
		(*r)[name] = cur - v
	}
	return wasSaturated
}

// Plus returns r + o as a new map.
func (r Resources) Plus(o Resources) Resources {
	out := r.Clone()
	out.Add(o)
	return out
}

// Minus returns r - o as a new map (zero where o is larger).
func (r Resources) Minus(o Resources) Resources {
	out := r.Clone()
	out.Sub(o)
	return out
}

// Max returns the larger amount of each resource, as a new map.
func (r Resources) Max(o Resources) Resources {
	out := r.Clone()
	for name, v := range o {
		if v > out[name] {
			out[name] = v
		}
	}
	return out
}

// Scaled returns r times n (n < 0 counts as 0), saturating.
func (r Resources) Scaled(n int64) Resources {
	out := make(Resources, len(r))
	for name, v := range r {
		if m := mulSat(v, n); m > 0 {
			out[name] = m
		}
	}
	return out
}

// Clone copies r, leaving out zero and negative entries.
func (r Resources) Clone() Resources {
	out := make(Resources, len(r))
	for name, v := range r {
		if v > 0 {
			out[name] = v
		}
	}
	return out
}

// Equal reports whether both hold the same positive amounts.
func (r Resources) Equal(o Resources) bool {
	for name, v := range r {
		if v > 0 && v != o[name] {
			return false
		}
	}
	for name, v := range o {
		if v > 0 && v != r[name] {
			return false
		}
	}
	return true
}

// Names returns the resource names, sorted, so that reasons and renderings
// come out the same every time.
func (r Resources) Names() []v1.ResourceName {
	return slices.Sorted(maps.Keys(r))
}

// String renders "cpu=2,memory=4Gi", sorted by name.
func (r Resources) String() string {
	parts := make([]string, 0, len(r))
	for _, n := range r.Names() {
		parts = append(parts, fmt.Sprintf("%s=%s", n, Quantity(n, r[n])))
	}
	return strings.Join(parts, ",")
}
