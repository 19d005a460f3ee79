// Package quota is BatchQuota's bookkeeping: per-namespace used, min and max,
// the admission rules (max, and borrowing beyond min from the cluster's unused
// guaranteed quota), and gang placeholders. It has no scheduler framework
// import, so it is tested on its own and under the race detector.
package quota

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Resources are amounts in milli-units (MilliValue), by resource name.
type Resources map[v1.ResourceName]int64

// FromList converts a ResourceList.
func FromList(l v1.ResourceList) Resources {
	r := make(Resources, len(l))
	for name, q := range l {
		r[name] = q.MilliValue()
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

// Add adds o to r in place.
func (r Resources) Add(o Resources) {
	for name, v := range o {
		r[name] += v
	}
}

// Sub subtracts o from r in place, dropping entries that reach zero.
func (r Resources) Sub(o Resources) {
	for name, v := range o {
		r[name] -= v
		if r[name] == 0 {
			delete(r, name)
		}
	}
}

// Scaled returns r times n.
func (r Resources) Scaled(n int64) Resources {
	out := make(Resources, len(r))
	for name, v := range r {
		out[name] = v * n
	}
	return out
}

// Clone copies r.
func (r Resources) Clone() Resources {
	out := make(Resources, len(r))
	for name, v := range r {
		out[name] = v
	}
	return out
}

// Equal reports whether both hold the same non-zero amounts.
func (r Resources) Equal(o Resources) bool {
	for name, v := range r {
		if v != o[name] {
			return false
		}
	}
	for name, v := range o {
		if v != r[name] {
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
