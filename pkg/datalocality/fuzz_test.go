package datalocality

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
)

// FuzzAnnotations: any datasets or locality-wait annotation parses or fails
// with a message, never panics, and never yields a negative wait. The seeds
// run with every `go test`.
func FuzzAnnotations(f *testing.F) {
	f.Add("sales-2026", "30s")
	f.Add("a,b,,c", "1h")
	f.Add(" , ", "-5s")
	f.Add("x", "forever")
	f.Add("", "9999999999999h")
	f.Fuzz(func(t *testing.T, datasets, wait string) {
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Annotations: map[string]string{
			locusv1alpha1.AnnotationDatasets: datasets, locusv1alpha1.AnnotationLocalityWait: wait}}}
		for _, name := range DatasetNames(pod) {
			if name == "" {
				t.Fatalf("empty dataset name from %q", datasets)
			}
		}
		d, err := LocalityWait(pod, time.Second)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if d < 0 {
			t.Fatalf("negative wait %v from %q", d, wait)
		}
	})
}
