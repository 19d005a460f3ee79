package compliance

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/metrics"
)

const (
	annCompliance = locusv1alpha1.AnnotationCompliance
	annResidency  = locusv1alpha1.AnnotationDataResidency
	// defaultPrefix is the default certificationLabelPrefix.
	defaultPrefix = "node-restriction.kubernetes.io/compliance."
)

// testResidency is the residency argument used throughout the tests.
var testResidency = map[string][]string{
	"eu": {"eu-west-1", "eu-central-1"},
	"us": {"us-east-1"},
}

func namespace(name string, ann map[string]string) *v1.Namespace {
	return &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}}
}

func TestParseRequirements(t *testing.T) {
	tests := []struct {
		name      string
		pod       *v1.Pod
		ns        *v1.Namespace
		residency map[string][]string
		want      *Requirements
		// wantErr lists substrings that the error must contain; nil means no error.
		wantErr []string
	}{
		{
			name: "no annotations anywhere",
			pod:  st.MakePod().Name("p").Namespace("ns").Obj(),
			ns:   namespace("ns", nil),
			want: &Requirements{},
		},
		{
			name: "pod only",
			pod:  st.MakePod().Name("p").Namespace("ns").Annotation(annCompliance, "pci-dss").Obj(),
			ns:   namespace("ns", nil),
			want: &Requirements{Standards: []string{"pci-dss"}},
		},
		{
			name: "namespace only",
			pod:  st.MakePod().Name("p").Namespace("ns").Obj(),
			ns:   namespace("ns", map[string]string{annCompliance: "hipaa"}),
			want: &Requirements{Standards: []string{"hipaa"}},
		},
		{
			name: "union of pod and namespace, sorted",
			pod:  st.MakePod().Name("p").Namespace("ns").Annotation(annCompliance, "soc2,pci-dss").Obj(),
			ns:   namespace("ns", map[string]string{annCompliance: "hipaa"}),
			want: &Requirements{Standards: []string{"hipaa", "pci-dss", "soc2"}},
		},
		{
			name: "duplicates and spaces",
			pod:  st.MakePod().Name("p").Namespace("ns").Annotation(annCompliance, " pci-dss , hipaa,pci-dss ").Obj(),
			ns:   namespace("ns", map[string]string{annCompliance: "hipaa ,  pci-dss"}),
			want: &Requirements{Standards: []string{"hipaa", "pci-dss"}},
		},
		{
			name: "empty entries are ignored",
			pod:  st.MakePod().Name("p").Namespace("ns").Annotation(annCompliance, ",pci-dss,, ,").Obj(),
			ns:   namespace("ns", nil),
			want: &Requirements{Standards: []string{"pci-dss"}},
		},
		{
			name: "empty annotation on the pod does not remove the namespace's",
			pod:  st.MakePod().Name("p").Namespace("ns").Annotation(annCompliance, "").Obj(),
			ns:   namespace("ns", map[string]string{annCompliance: "hipaa"}),
			want: &Requirements{Standards: []string{"hipaa"}},
		},
		{
			name:    "uppercase standard on the pod",
			pod:     st.MakePod().Name("p").Namespace("ns").Annotation(annCompliance, "hipaa,PCI-DSS").Obj(),
			ns:      namespace("ns", nil),
			wantErr: []string{`"PCI-DSS"`, "pod annotation", annCompliance},
		},
		{
			name:    "underscore in a namespace standard",
			pod:     st.MakePod().Name("p").Namespace("ns").Annotation(annCompliance, "hipaa").Obj(),
			ns:      namespace("ns", map[string]string{annCompliance: "pci_dss"}),
			wantErr: []string{`"pci_dss"`, "namespace annotation", annCompliance},
		},
		{
			name:    "bad standard in the namespace with a pod that has none",
			pod:     st.MakePod().Name("p").Namespace("ns").Obj(),
			ns:      namespace("ns", map[string]string{annCompliance: "soc2, Hipaa"}),
			wantErr: []string{`"Hipaa"`, "namespace annotation"},
		},
		{
			name:      "residency from the pod",
			pod:       st.MakePod().Name("p").Namespace("ns").Annotation(annResidency, "eu").Obj(),
			ns:        namespace("ns", nil),
			residency: testResidency,
			want:      &Requirements{Residency: "eu", Regions: sets.New("eu-west-1", "eu-central-1")},
		},
		{
			name:      "residency from the namespace",
			pod:       st.MakePod().Name("p").Namespace("ns").Annotation(annCompliance, "pci-dss").Obj(),
			ns:        namespace("ns", map[string]string{annResidency: "us"}),
			residency: testResidency,
			want:      &Requirements{Standards: []string{"pci-dss"}, Residency: "us", Regions: sets.New("us-east-1")},
		},
		{
			name:      "same residency on pod and namespace",
			pod:       st.MakePod().Name("p").Namespace("ns").Annotation(annResidency, "eu").Obj(),
			ns:        namespace("ns", map[string]string{annResidency: " eu "}),
			residency: testResidency,
			want:      &Requirements{Residency: "eu", Regions: sets.New("eu-west-1", "eu-central-1")},
		},
		{
			name:      "conflicting residency names both values",
			pod:       st.MakePod().Name("p").Namespace("ns").Annotation(annResidency, "eu").Obj(),
			ns:        namespace("ns", map[string]string{annResidency: "us"}),
			residency: testResidency,
			wantErr:   []string{`"eu"`, `"us"`, annResidency},
		},
		{
			name:      "unknown residency group on the pod",
			pod:       st.MakePod().Name("p").Namespace("ns").Annotation(annResidency, "apac").Obj(),
			ns:        namespace("ns", nil),
			residency: testResidency,
			wantErr:   []string{`"apac"`, annResidency},
		},
		{
			name:      "unknown residency group on the namespace",
			pod:       st.MakePod().Name("p").Namespace("ns").Obj(),
			ns:        namespace("ns", map[string]string{annResidency: "mars"}),
			residency: testResidency,
			wantErr:   []string{`"mars"`},
		},
		{
			name:    "residency without any configured group",
			pod:     st.MakePod().Name("p").Namespace("ns").Annotation(annResidency, "eu").Obj(),
			ns:      namespace("ns", nil),
			wantErr: []string{`"eu"`},
		},
		{
			name:      "nil namespace with pod annotations",
			pod:       st.MakePod().Name("p").Namespace("ns").Annotation(annCompliance, "hipaa").Annotation(annResidency, "eu").Obj(),
			residency: testResidency,
			want:      &Requirements{Standards: []string{"hipaa"}, Residency: "eu", Regions: sets.New("eu-west-1", "eu-central-1")},
		},
		{
			name: "nil namespace and no pod annotations",
			pod:  st.MakePod().Name("p").Namespace("ns").Obj(),
			want: &Requirements{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequirements(tt.pod, tt.ns, tt.residency)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("ParseRequirements() = %+v, want an error containing %q", got, tt.wantErr)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("ParseRequirements() error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRequirements() unexpected error: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty(), cmpopts.IgnoreUnexported(Requirements{})); diff != "" {
				t.Errorf("ParseRequirements() (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestRequirementsEmpty(t *testing.T) {
	tests := []struct {
		name string
		req  Requirements
		want bool
	}{
		{name: "nothing", req: Requirements{}, want: true},
		{name: "standards", req: Requirements{Standards: []string{"hipaa"}}, want: false},
		{name: "residency", req: Requirements{Residency: "eu", Regions: sets.New("eu-west-1")}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.req.Empty(); got != tt.want {
				t.Errorf("Empty() = %v, want %v", got, tt.want)
			}
		})
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestCertificationValue(t *testing.T) {
	tests := []struct {
		name  string
		value string
		now   string
		want  CertState
	}{
		{name: "true", value: "true", now: "2026-02-15T12:00:00Z", want: CertValid},
		{name: "true in the far future", value: "true", now: "2999-01-01T00:00:00Z", want: CertValid},
		{name: "future date", value: "2099-12-31", now: "2026-02-15T12:00:00Z", want: CertValid},
		{name: "tomorrow", value: "2026-02-16", now: "2026-02-15T12:00:00Z", want: CertValid},
		{name: "today at the start of the day", value: "2026-02-15", now: "2026-02-15T00:00:00Z", want: CertValid},
		{name: "today at 23:59:59 UTC", value: "2026-02-15", now: "2026-02-15T23:59:59Z", want: CertValid},
		{name: "today at the last nanosecond", value: "2026-02-15", now: "2026-02-15T23:59:59.999999999Z", want: CertValid},
		{name: "00:00 UTC the next day", value: "2026-02-15", now: "2026-02-16T00:00:00Z", want: CertExpired},
		{name: "still that day in UTC, the next day locally", value: "2026-02-15", now: "2026-02-16T00:30:00+01:00", want: CertValid},
		{name: "next day in UTC, still that day locally", value: "2026-02-15", now: "2026-02-15T20:00:00-05:00", want: CertExpired},
		{name: "yesterday", value: "2026-02-14", now: "2026-02-15T12:00:00Z", want: CertExpired},
		{name: "past date", value: "2026-01-31", now: "2026-02-15T12:00:00Z", want: CertExpired},
		{name: "capitalised True", value: "True", now: "2026-02-15T12:00:00Z", want: CertInvalid},
		{name: "yes", value: "yes", now: "2026-02-15T12:00:00Z", want: CertInvalid},
		{name: "false", value: "false", now: "2026-02-15T12:00:00Z", want: CertInvalid},
		{name: "empty", value: "", now: "2026-02-15T12:00:00Z", want: CertInvalid},
		{name: "garbage", value: "not-a-date", now: "2026-02-15T12:00:00Z", want: CertInvalid},
		{name: "date without leading zeros", value: "2099-1-5", now: "2026-02-15T12:00:00Z", want: CertInvalid},
		{name: "impossible date", value: "2099-02-30", now: "2026-02-15T12:00:00Z", want: CertInvalid},
		{name: "day first", value: "31-12-2099", now: "2026-02-15T12:00:00Z", want: CertInvalid},
		{name: "timestamp", value: "2099-12-31T00:00:00Z", now: "2026-02-15T12:00:00Z", want: CertInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := certificationValue(tt.value, mustTime(t, tt.now)); got != tt.want {
				t.Errorf("certificationValue(%q, %s) = %v, want %v", tt.value, tt.now, got, tt.want)
			}
		})
	}
}

func TestCertification(t *testing.T) {
	now := mustTime(t, "2026-02-15T12:00:00Z")
	const customPrefix = "certs.example.com/"
	tests := []struct {
		name      string
		labels    map[string]string
		prefix    string
		standard  string
		wantState CertState
		wantValue string
	}{
		{name: "nil labels", prefix: defaultPrefix, standard: "pci-dss", wantState: CertMissing},
		{
			name:      "missing label",
			labels:    map[string]string{defaultPrefix + "hipaa": "true"},
			prefix:    defaultPrefix,
			standard:  "pci-dss",
			wantState: CertMissing,
		},
		{
			name:      "true",
			labels:    map[string]string{defaultPrefix + "pci-dss": "true"},
			prefix:    defaultPrefix,
			standard:  "pci-dss",
			wantState: CertValid,
			wantValue: "true",
		},
		{
			name:      "future date",
			labels:    map[string]string{defaultPrefix + "pci-dss": "2026-12-31"},
			prefix:    defaultPrefix,
			standard:  "pci-dss",
			wantState: CertValid,
			wantValue: "2026-12-31",
		},
		{
			name:      "past date",
			labels:    map[string]string{defaultPrefix + "pci-dss": "2026-01-31"},
			prefix:    defaultPrefix,
			standard:  "pci-dss",
			wantState: CertExpired,
			wantValue: "2026-01-31",
		},
		{
			name:      "garbage",
			labels:    map[string]string{defaultPrefix + "pci-dss": "yes"},
			prefix:    defaultPrefix,
			standard:  "pci-dss",
			wantState: CertInvalid,
			wantValue: "yes",
		},
		{
			name:      "label without the prefix does not certify",
			labels:    map[string]string{"pci-dss": "true", "compliance.pci-dss": "true"},
			prefix:    defaultPrefix,
			standard:  "pci-dss",
			wantState: CertMissing,
		},
		{
			name:      "custom prefix",
			labels:    map[string]string{customPrefix + "pci-dss": "2099-01-01"},
			prefix:    customPrefix,
			standard:  "pci-dss",
			wantState: CertValid,
			wantValue: "2099-01-01",
		},
		{
			name:      "custom prefix ignores the default one",
			labels:    map[string]string{defaultPrefix + "pci-dss": "true"},
			prefix:    customPrefix,
			standard:  "pci-dss",
			wantState: CertMissing,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, value := Certification(tt.labels, tt.prefix, tt.standard, now)
			if state != tt.wantState || value != tt.wantValue {
				t.Errorf("Certification() = (%v, %q), want (%v, %q)", state, value, tt.wantState, tt.wantValue)
			}
		})
	}
}

func TestValidCertifications(t *testing.T) {
	now := mustTime(t, "2026-02-15T12:00:00Z")
	tests := []struct {
		name   string
		labels map[string]string
		prefix string
		skip   []string
		want   int
	}{
		{name: "no labels", prefix: defaultPrefix, want: 0},
		{
			name: "valid ones count, expired and invalid ones do not",
			labels: map[string]string{
				defaultPrefix + "pci-dss":  "true",
				defaultPrefix + "hipaa":    "2099-12-31",
				defaultPrefix + "soc2":     "2026-01-31",
				defaultPrefix + "iso27001": "maybe",
				v1.LabelTopologyRegion:     "eu-west-1",
			},
			prefix: defaultPrefix,
			want:   2,
		},
		{
			name: "skipped standards do not count",
			labels: map[string]string{
				defaultPrefix + "pci-dss": "true",
				defaultPrefix + "hipaa":   "true",
				defaultPrefix + "soc2":    "true",
			},
			prefix: defaultPrefix,
			skip:   []string{"pci-dss", "soc2"},
			want:   1,
		},
		{
			name: "labels under another prefix do not count",
			labels: map[string]string{
				"certs.example.com/pci-dss": "true",
				defaultPrefix + "hipaa":     "true",
			},
			prefix: defaultPrefix,
			want:   1,
		},
		{
			name: "custom prefix",
			labels: map[string]string{
				"certs.example.com/pci-dss": "true",
				"certs.example.com/hipaa":   "2099-01-01",
				defaultPrefix + "soc2":      "true",
			},
			prefix: "certs.example.com/",
			want:   2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: tt.labels}}
			x := newNodeIndex(tt.prefix, "")
			x.set(node)
			if got := x.spareCounts(tt.skip, now)[node.Name]; got != int32(tt.want) {
				t.Errorf("valid certifications counted = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestRequirementsCheck(t *testing.T) {
	now := mustTime(t, "2026-02-15T12:00:00Z")
	eu := sets.New("eu-west-1", "eu-central-1")
	tests := []struct {
		name string
		req  *Requirements
		node *v1.Node
		want *Violation
	}{
		{
			name: "no requirements",
			req:  &Requirements{},
			node: st.MakeNode().Name("n").Obj(),
		},
		{
			name: "all satisfied",
			req:  &Requirements{Standards: []string{"hipaa", "pci-dss"}, Residency: "eu", Regions: eu},
			node: st.MakeNode().Name("n").Label(defaultPrefix+"hipaa", "true").Label(defaultPrefix+"pci-dss", "2026-02-15").
				Label(v1.LabelTopologyRegion, "eu-central-1").Obj(),
		},
		{
			name: "missing",
			req:  &Requirements{Standards: []string{"pci-dss"}},
			node: st.MakeNode().Name("n").Label(defaultPrefix+"hipaa", "true").Obj(),
			want: &Violation{Standard: "pci-dss", Kind: metrics.RejectMissing, Message: "missing certification pci-dss"},
		},
		{
			name: "expired",
			req:  &Requirements{Standards: []string{"pci-dss"}},
			node: st.MakeNode().Name("n").Label(defaultPrefix+"pci-dss", "2026-01-31").Obj(),
			want: &Violation{Standard: "pci-dss", Kind: metrics.RejectExpired, Message: "certification pci-dss expired 2026-01-31"},
		},
		{
			name: "invalid",
			req:  &Requirements{Standards: []string{"pci-dss"}},
			node: st.MakeNode().Name("n").Label(defaultPrefix+"pci-dss", "yes").Obj(),
			want: &Violation{Standard: "pci-dss", Kind: metrics.RejectInvalid, Message: `certification pci-dss has invalid value "yes"`},
		},
		{
			name: "first failing standard in sorted order",
			req:  &Requirements{Standards: []string{"hipaa", "pci-dss", "soc2"}},
			node: st.MakeNode().Name("n").Label(defaultPrefix+"hipaa", "true").Label(defaultPrefix+"soc2", "2020-01-01").Obj(),
			want: &Violation{Standard: "pci-dss", Kind: metrics.RejectMissing, Message: "missing certification pci-dss"},
		},
		{
			name: "outside residency",
			req:  &Requirements{Residency: "eu", Regions: eu},
			node: st.MakeNode().Name("n").Label(v1.LabelTopologyRegion, "us-east-1").Obj(),
			want: &Violation{Standard: "eu", Kind: metrics.RejectResidency, Message: "outside data residency eu"},
		},
		{
			name: "no region label is outside residency",
			req:  &Requirements{Residency: "eu", Regions: eu},
			node: st.MakeNode().Name("n").Obj(),
			want: &Violation{Standard: "eu", Kind: metrics.RejectResidency, Message: "outside data residency eu"},
		},
		{
			name: "certifications are checked before residency",
			req:  &Requirements{Standards: []string{"pci-dss"}, Residency: "eu", Regions: eu},
			node: st.MakeNode().Name("n").Label(v1.LabelTopologyRegion, "us-east-1").Obj(),
			want: &Violation{Standard: "pci-dss", Kind: metrics.RejectMissing, Message: "missing certification pci-dss"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.req.Check(tt.node, defaultPrefix, now)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Check() (-want,+got):\n%s", diff)
			}
		})
	}
}
