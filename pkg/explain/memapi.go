package explain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/rest"
	clienttesting "k8s.io/client-go/testing"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
)

// crdScheme holds the custom resources that locus's plugins read.
var crdScheme = runtime.NewScheme()

func init() {
	utilruntime.Must(locusv1alpha1.AddToScheme(crdScheme))
	utilruntime.Must(schedv1alpha1.AddToScheme(crdScheme))
}

// memAPI serves the custom resources that locus's plugins read (Datasets,
// ElasticQuotas, PodGroups) from memory, over the HTTP API that their
// generated clients speak: get, list and watch. DataLocality and BatchQuota
// build those clients from the framework handle's KubeConfig; pointing it
// here lets them run unchanged on a copy of the cluster's state, with no
// route to the real API server. Writes (BatchQuota's status writer) are
// refused and counted.
type memAPI struct {
	tracker clienttesting.ObjectTracker
	codecs  serializer.CodecFactory

	mu      sync.Mutex
	refused []string
	// watched holds the resources that a client watches: it has listed them.
	watched map[string]bool
}

func newMemAPI(objs ...runtime.Object) (*memAPI, error) {
	codecs := serializer.NewCodecFactory(crdScheme)
	m := &memAPI{tracker: clienttesting.NewObjectTracker(crdScheme, codecs.UniversalDecoder()), codecs: codecs, watched: map[string]bool{}}
	for _, obj := range objs {
		if err := m.tracker.Add(obj); err != nil {
			return nil, fmt.Errorf("adding %T to the in-memory API: %w", obj, err)
		}
	}
	return m, nil
}

// config is a rest.Config whose requests this memAPI answers.
func (m *memAPI) config() *rest.Config {
	return &rest.Config{
		// Never resolved: the transport answers every request.
		Host:      "http://locus-explain.invalid",
		Transport: m,
		QPS:       -1,
	}
}

// Refused lists the writes that plugins attempted ("PUT /apis/...").
func (m *memAPI) Refused() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.refused...)
}

// Watched reports whether a client has started to watch the resource
// (plural), which an informer does once it has stored its first list.
func (m *memAPI) Watched(resource string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.watched[resource]
}

// request is a parsed API path.
type request struct {
	gvr                    schema.GroupVersionResource
	namespace, name, subre string
}

// parsePath reads /apis/GROUP/VERSION[/namespaces/NS]/RESOURCE[/NAME[/SUB]].
func parsePath(path string) (request, bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) < 4 || parts[0] != "apis" {
		return request{}, false
	}
	r := request{gvr: schema.GroupVersionResource{Group: parts[1], Version: parts[2]}}
	rest := parts[3:]
	if rest[0] == "namespaces" && len(rest) >= 3 {
		r.namespace, rest = rest[1], rest[2:]
	}
	if len(rest) > 3 {
		return request{}, false
	}
	r.gvr.Resource = rest[0]
	if len(rest) > 1 {
		r.name = rest[1]
	}
	if len(rest) > 2 {
		r.subre = rest[2]
	}
	return r, true
}

// RoundTrip answers one request.
func (m *memAPI) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
	r, ok := parsePath(req.URL.Path)
	if !ok {
		return m.status(req, apierrors.NewNotFound(schema.GroupResource{}, req.URL.Path))
	}
	gvk, err := m.kindFor(r.gvr)
	if err != nil {
		return m.status(req, apierrors.NewNotFound(r.gvr.GroupResource(), r.name))
	}
	if req.Method != http.MethodGet {
		m.mu.Lock()
		m.refused = append(m.refused, req.Method+" "+req.URL.Path)
		m.mu.Unlock()
		return m.status(req, apierrors.NewMethodNotSupported(r.gvr.GroupResource(), strings.ToLower(req.Method)+" (read-only copy of the cluster)"))
	}
	switch {
	case r.name != "":
		obj, err := m.tracker.Get(r.gvr, r.namespace, r.name)
		if err != nil {
			return m.status(req, err)
		}
		return m.object(req, gvk.GroupVersion(), obj)
	case req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1":
		return m.watch(req, r, gvk)
	default:
		obj, err := m.tracker.List(r.gvr, gvk, r.namespace)
		if err != nil {
			return m.status(req, err)
		}
		return m.object(req, gvk.GroupVersion(), obj)
	}
}

func (m *memAPI) kindFor(gvr schema.GroupVersionResource) (schema.GroupVersionKind, error) {
	for gvk := range crdScheme.AllKnownTypes() {
		if gvk.GroupVersion() != gvr.GroupVersion() || strings.HasSuffix(gvk.Kind, "List") {
			continue
		}
		if plural, _ := meta.UnsafeGuessKindToResource(gvk); plural == gvr {
			return gvk, nil
		}
	}
	return schema.GroupVersionKind{}, fmt.Errorf("no kind for %v", gvr)
}

func (m *memAPI) encode(gv schema.GroupVersion, obj runtime.Object) ([]byte, error) {
	return runtime.Encode(m.codecs.LegacyCodec(gv), obj)
}

func (m *memAPI) object(req *http.Request, gv schema.GroupVersion, obj runtime.Object) (*http.Response, error) {
	data, err := m.encode(gv, obj)
	if err != nil {
		return nil, err
	}
	return response(req, http.StatusOK, io.NopCloser(bytes.NewReader(data))), nil
}

func (m *memAPI) status(req *http.Request, err error) (*http.Response, error) {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		st = apierrors.NewInternalError(err)
	}
	status := st.Status()
	status.Kind, status.APIVersion = "Status", "v1"
	data, mErr := json.Marshal(&status)
	if mErr != nil {
		return nil, mErr
	}
	code := int(status.Code)
	if code == 0 {
		code = http.StatusInternalServerError
	}
	return response(req, code, io.NopCloser(bytes.NewReader(data))), nil
}

// watch streams the tracker's events as the API server does: one JSON
// WatchEvent after another, until the client goes away.
func (m *memAPI) watch(req *http.Request, r request, gvk schema.GroupVersionKind) (*http.Response, error) {
	w, err := m.tracker.Watch(r.gvr, r.namespace)
	if err != nil {
		return m.status(req, err)
	}
	m.mu.Lock()
	m.watched[r.gvr.Resource] = true
	m.mu.Unlock()
	pr, pw := io.Pipe()
	go func() {
		defer w.Stop()
		for {
			select {
			case <-req.Context().Done():
				_ = pw.CloseWithError(req.Context().Err())
				return
			case ev, ok := <-w.ResultChan():
				if !ok {
					_ = pw.Close()
					return
				}
				data, err := m.encode(gvk.GroupVersion(), ev.Object)
				if err != nil {
					_ = pw.CloseWithError(err)
					return
				}
				line, err := json.Marshal(&metav1.WatchEvent{Type: string(ev.Type), Object: runtime.RawExtension{Raw: data}})
				if err != nil {
					_ = pw.CloseWithError(err)
					return
				}
				if _, err := pw.Write(append(line, '\n')); err != nil {
					return
				}
			}
		}
	}()
	return response(req, http.StatusOK, pr), nil
}

func response(req *http.Request, code int, body io.ReadCloser) *http.Response {
	return &http.Response{
		Status:     fmt.Sprintf("%d %s", code, http.StatusText(code)),
		StatusCode: code,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": []string{runtime.ContentTypeJSON}},
		Body:    body,
		Request: req,
	}
}
