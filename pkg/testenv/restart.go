package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	kubeapiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
)

// RestartableControlPlane is a control plane whose kube-apiserver can be
// stopped and started again on the same etcd while clients keep their
// address, credentials and trust: they reach it through a Proxy, with a
// static token, and the serving certificate is kept in a directory of the
// test's, which the next server reuses.
type RestartableControlPlane struct {
	*ControlPlane
	Proxy *Proxy

	t        TB
	storage  *storagebackend.Config
	flags    []string
	mu       sync.Mutex
	teardown func()
}

// restartToken is the static bearer token of the control plane's admin.
const restartToken = "locus-test-admin"

// StartRestartableControlPlane starts etcd, a kube-apiserver and a proxy in
// front of it.
func StartRestartableControlPlane(t TB, opts Options) *RestartableControlPlane {
	t.Helper()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(restartToken+",locus-test-admin,locus-test-admin,system:masters\n"), 0o600); err != nil {
		t.Fatalf("writing the token file: %v", err)
	}
	certDir := filepath.Join(dir, "certs")
	r := &RestartableControlPlane{
		t: t,
		storage: &storagebackend.Config{
			Type:      storagebackend.StorageTypeETCD3,
			Prefix:    "/registry",
			Transport: storagebackend.TransportConfig{ServerList: []string{startEtcd(t)}},
		},
		flags: append([]string{
			"--disable-admission-plugins=ServiceAccount",
			"--cert-dir=" + certDir,
			"--token-auth-file=" + tokens,
		}, opts.APIServerFlags...),
	}
	server := r.start()
	r.Proxy = StartProxy(t, strings.TrimPrefix(server.ClientConfig.Host, "https://"))
	cfg := &rest.Config{
		Host:            "https://" + r.Proxy.Addr,
		BearerToken:     restartToken,
		TLSClientConfig: rest.TLSClientConfig{CAFile: filepath.Join(certDir, "apiserver.crt")},
		QPS:             5000,
		Burst:           10000,
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("building a client: %v", err)
	}
	r.ControlPlane = &ControlPlane{Config: cfg, Client: client, CertDir: certDir}
	t.Cleanup(r.stop)
	return r
}

func (r *RestartableControlPlane) start() kubeapiservertesting.TestServer {
	r.t.Helper()
	server, err := kubeapiservertesting.StartTestServer(r.t, nil, r.flags, r.storage)
	if err != nil {
		r.t.Fatalf("starting kube-apiserver: %v", err)
	}
	r.mu.Lock()
	r.teardown = server.TearDownFn
	r.mu.Unlock()
	return server
}

func (r *RestartableControlPlane) stop() {
	r.mu.Lock()
	teardown := r.teardown
	r.teardown = nil
	r.mu.Unlock()
	if teardown != nil {
		teardown()
	}
}

// Restart stops the kube-apiserver (every connection through the proxy
// breaks, every watch ends), starts a new one on the same etcd and serving
// certificate, and points the proxy at it.
func (r *RestartableControlPlane) Restart() error {
	r.Proxy.Cut()
	r.stop()
	server := r.start()
	r.Proxy.SetBackend(strings.TrimPrefix(server.ClientConfig.Host, "https://"))
	r.Proxy.Restore()
	if _, err := r.Client.Discovery().ServerVersion(); err != nil {
		return fmt.Errorf("the restarted kube-apiserver does not answer: %w", err)
	}
	return nil
}
