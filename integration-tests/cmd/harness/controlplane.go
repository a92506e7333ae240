package main

// etcd, kube-apiserver and kube-controller-manager, all in this process.

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	apiapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apioptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"

	logsapi "k8s.io/component-base/logs/api/v1"
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as in the real binaries
)

// startEtcd starts a single-member etcd on loopback, data under runDir/etcd.
func startEtcd(h *harness) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "harness"
	cfg.Dir = filepath.Join(h.runDir, "etcd")
	client := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(h.state.EtcdClientPort)}
	peer := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(h.state.EtcdPeerPort)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{"stderr"} // stderr is harness.log
	// No fsync: a killed process loses nothing (the page cache survives), only
	// a machine crash would, and a test run does not care. Much faster writes.
	cfg.UnsafeNoFsync = true
	cfg.QuotaBackendBytes = 2 << 30
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, err
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("etcd not ready after 60s")
	}
}

// apiserverArgs are the kube-apiserver flags, as a real deployment passes them.
func apiserverArgs(h *harness) []string {
	p := h.pki
	args := []string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(h.state.EtcdClientPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(h.state.APIServerPort),
		"--cert-dir=" + p.dir,
		"--tls-cert-file=" + p.apiserverCert,
		"--tls-private-key-file=" + p.apiserverKey,
		"--client-ca-file=" + p.clientCACert,
		"--token-auth-file=" + h.tokensFile,
		"--anonymous-auth=false",
		"--authorization-mode=RBAC", // the default is AlwaysAllow
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.saPub,
		"--service-account-signing-key-file=" + p.saKey,
		"--service-cluster-ip-range=10.96.0.0/16", // allocated, never routed
		"--allow-privileged=true",
		"--kubelet-certificate-authority=" + p.caCert,
		"--kubelet-client-certificate=" + p.kubeletClientCert,
		"--kubelet-client-key=" + p.kubeletClientKey,
		"--kubelet-preferred-address-types=InternalIP",
		// The lease reconciler would publish 127.0.0.1 as the endpoint of the
		// "kubernetes" Service, which Endpoints validation rejects (loopback),
		// logging an error every 10s. Nothing here routes through that Service.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		// On SIGTERM, give the HTTP server 2s (not --request-timeout, 60s)
		// before cutting long-running requests such as logs -f.
		"--shutdown-send-retry-after=true",
	}
	if h.http2MaxStreams > 0 {
		args = append(args, "--http2-max-streams-per-connection="+strconv.Itoa(h.http2MaxStreams))
	}
	return args
}

// runAPIServer builds the options the way kube-apiserver's own command does
// (flags -> Complete -> Validate -> Run), without NewAPIServerCommand, which
// would install a process-wide signal handler. It blocks until ctx is done.
func runAPIServer(ctx context.Context, h *harness) error {
	s := apioptions.NewServerRunOptions()
	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	for _, f := range s.Flags().FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(apiserverArgs(h)); err != nil {
		return err
	}
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	// Logging (klog -> stderr = harness.log), configured once for the process.
	fg := s.GenericServerRunOptions.ComponentGlobalsRegistry.FeatureGateFor("kube")
	if err := logsapi.ValidateAndApply(s.Logs, fg); err != nil {
		return err
	}
	// In-process loopback clients should not log self-issued warnings.
	rest.SetDefaultWarningHandler(rest.NoWarnings{})

	completed, err := s.Complete(ctx)
	if err != nil {
		return err
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return utilerrors.NewAggregate(errs)
	}
	return apiapp.Run(ctx, completed)
}

// controllers are the kube-controller-manager controllers the tests need:
// namespace deletion, default ServiceAccounts and their tokens, ownerRef GC,
// and Deployments -> ReplicaSets -> Pods.
var controllers = []string{
	"namespace-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"garbage-collector-controller",
	"deployment-controller",
	"replicaset-controller",
	// admin/edit/view are aggregated ClusterRoles: without this controller they hold no rules.
	"clusterrole-aggregation-controller",
}

// runControllers runs kube-controller-manager's controllers against the
// apiserver as admin. It blocks until ctx is done.
func runControllers(ctx context.Context, h *harness) error {
	s, err := kcmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return err
	}
	s.Generic.ClientConnection.Kubeconfig = h.adminKubeconfig
	s.Generic.LeaderElection.LeaderElect = false
	s.Generic.Controllers = controllers
	s.SecureServing.BindPort = 0 // no /healthz server of its own
	s.SAController.ServiceAccountKeyFile = h.pki.saKey
	s.SAController.RootCAFile = h.pki.caCert
	s.ControllerShutdownTimeout = 3 * time.Second
	// Its defaults (QPS 20) make namespace deletion slow-ish; this is a test rig.
	s.Generic.ClientConnection.QPS = 200
	s.Generic.ClientConnection.Burst = 400
	c, err := s.Config(ctx, kcmapp.KnownControllers(), kcmapp.ControllersDisabledByDefault(), kcmapp.ControllerAliases())
	if err != nil {
		return err
	}
	klog.Infof("harness: starting controllers %v", controllers)
	return kcmapp.Run(ctx, c.Complete())
}
