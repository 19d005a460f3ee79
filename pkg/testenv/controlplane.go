// Package testenv runs a real control plane in process: embedded etcd, a real
// kube-apiserver, and real schedulers (locus's profile and the default
// kube-scheduler profile) built with the upstream scheduler.New. Integration
// tests, the demo and the sandbox all stand on it; nothing here mocks the API.
package testenv

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	kubeapiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
	"k8s.io/kubernetes/test/utils/ktesting"
)

// TB is what the control plane needs of a test: *testing.T satisfies it, and
// so does Process for programs that are not tests.
type TB = ktesting.TB

// ControlPlane is etcd plus kube-apiserver, running in this process.
type ControlPlane struct {
	// Config reaches the API server with full rights.
	Config *rest.Config
	// Client is a clientset on Config.
	Client kubernetes.Interface
	// CertDir holds the API server's serving certificates.
	CertDir string
}

// Options tune the control plane.
type Options struct {
	// APIServerFlags are extra kube-apiserver flags.
	APIServerFlags []string
	// ServiceAccountAdmission leaves the ServiceAccount admission plugin on,
	// as in a real cluster: a pod must then name a ServiceAccount that
	// exists (the "default" one when it names none), and no controller
	// creates "default" unless the test runs kube-controller-manager's
	// serviceaccount-controller (StartControllerManager) or creates it.
	// Off by default: most tests create pods in namespaces that have no
	// ServiceAccount at all.
	ServiceAccountAdmission bool
}

// StartControlPlane starts embedded etcd and a kube-apiserver on loopback.
// Both stop when t's cleanups run.
func StartControlPlane(t TB, opts Options) *ControlPlane {
	t.Helper()
	endpoint := startEtcd(t)
	storage := &storagebackend.Config{
		Type:      storagebackend.StorageTypeETCD3,
		Prefix:    "/registry",
		Transport: storagebackend.TransportConfig{ServerList: []string{endpoint}},
	}
	var flags []string
	if !opts.ServiceAccountAdmission {
		// Pods name service accounts that no controller creates here.
		flags = append(flags, "--disable-admission-plugins=ServiceAccount")
	}
	flags = append(flags, opts.APIServerFlags...)
	server, err := kubeapiservertesting.StartTestServer(t, nil, flags, storage)
	if err != nil {
		t.Fatalf("starting kube-apiserver: %v", err)
	}
	t.Cleanup(server.TearDownFn)

	cfg := rest.CopyConfig(server.ClientConfig)
	cfg.QPS, cfg.Burst = 5000, 10000
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("building a client: %v", err)
	}
	return &ControlPlane{Config: cfg, Client: client, CertDir: server.TmpDir}
}

// etcdPortLock keeps two control planes in one process from picking the same ports.
var etcdPortLock sync.Mutex

func startEtcd(t TB) string {
	etcdPortLock.Lock()
	defer etcdPortLock.Unlock()

	ports := freePorts(t, 2)
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))}

	cfg := embed.NewConfig()
	// A single member whose data is thrown away at the end: no need to fsync.
	cfg.UnsafeNoFsync = true
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.Dir = t.TempDir()
	if err := os.Chmod(cfg.Dir, 0o700); err != nil {
		t.Fatalf("etcd data dir: %v", err)
	}

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("starting etcd: %v", err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		t.Fatalf("etcd took too long to start")
	}
	return clientURL.String()
}

func freePorts(t TB, n int) []int {
	ports := make([]int, 0, n)
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// KubeconfigFile writes a kubeconfig for the control plane (for kubectl and
// for binaries started as processes) and returns its path.
func (cp *ControlPlane) KubeconfigFile(t TB) string {
	t.Helper()
	path := t.TempDir() + "/kubeconfig"
	if err := WriteKubeconfig(cp.Config, path); err != nil {
		t.Fatalf("writing kubeconfig: %v", err)
	}
	return path
}

// WriteKubeconfig writes a kubeconfig file that reaches cfg's server with cfg's credentials.
func WriteKubeconfig(cfg *rest.Config, path string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["locus"] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: cfg.CAData,
		CertificateAuthority:     cfg.CAFile,
		InsecureSkipTLSVerify:    cfg.Insecure,
		TLSServerName:            cfg.ServerName,
	}
	kc.AuthInfos["locus"] = &clientcmdapi.AuthInfo{
		Token:                 cfg.BearerToken,
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
	}
	kc.Contexts["locus"] = &clientcmdapi.Context{Cluster: "locus", AuthInfo: "locus"}
	kc.CurrentContext = "locus"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return nil
}
