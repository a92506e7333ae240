// Command harness runs a small real Kubernetes control plane in one process
// for Canopy's integration tests: embedded etcd, kube-apiserver, a few
// kube-controller-manager controllers, and a fake kubelet (one node,
// fake-node) whose pods' exec/attach/port-forward/logs act on the host.
//
// All state lives in --run-dir; a later start with the same run dir reuses
// the certificates, tokens, ports and etcd data. See ../../README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"
)

// state is what must stay the same across restarts besides files: ports.
type state struct {
	APIServerPort  int `json:"apiserverPort"`
	EtcdClientPort int `json:"etcdClientPort"`
	EtcdPeerPort   int `json:"etcdPeerPort"`
	KubeletPort    int `json:"kubeletPort"`
}

type harness struct {
	runDir          string
	state           state
	pki             *pki
	tokens          map[string]string
	tokensFile      string
	adminKubeconfig string
	stdoutIsLog     bool
	// http2MaxStreams is kube-apiserver's --http2-max-streams-per-connection; 0 keeps its default (100).
	http2MaxStreams int
	lock            *os.File // flocked run-dir/lock; must stay open (and reachable) to hold the lock
}

func (h *harness) path(parts ...string) string {
	return filepath.Join(append([]string{h.runDir}, parts...)...)
}
func (h *harness) podDir(ns, pod string) string    { return h.path("kubelet", "pods", ns, pod) }
func (h *harness) podLogDir(ns, pod string) string { return h.path("kubelet", "logs", ns, pod) }
func (h *harness) logPath(ns, pod, c string) string {
	return filepath.Join(h.podLogDir(ns, pod), c+".log")
}

// say reports progress on stdout and in harness.log (once if they are the same file).
func (h *harness) say(format string, args ...any) {
	klog.InfoDepth(1, "harness: "+fmt.Sprintf(format, args...))
	if !h.stdoutIsLog {
		fmt.Printf("harness: "+format+"\n", args...)
	}
}

func main() {
	start := time.Now()
	runDir := flag.String("run-dir", "", "directory holding all state (required)")
	bootstrapDir := flag.String("bootstrap-dir", "", "apply every YAML document in DIR/*.yaml once the apiserver is ready")
	kubectl := flag.String("kubectl", "", "kubectl path written to the env file (default: kubectl next to this binary)")
	http2MaxStreams := flag.Int("http2-max-streams-per-connection", 0, "kube-apiserver's limit on streams per HTTP/2 connection (0: its default, 100)")
	flag.Parse()
	if *runDir == "" {
		fmt.Fprintln(os.Stderr, "harness: --run-dir is required")
		os.Exit(2)
	}
	if err := run(start, *runDir, *bootstrapDir, *kubectl, *http2MaxStreams); err != nil {
		klog.Errorf("harness: %v", err)
		klog.Flush()
		fmt.Fprintf(os.Stdout, "harness: %v\n", err)
		os.Exit(1)
	}
}

func run(start time.Time, runDir, bootstrapDir, kubectl string, http2MaxStreams int) error {
	runDir, err := filepath.Abs(runDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	h := &harness{runDir: runDir, http2MaxStreams: http2MaxStreams}
	if err := h.setupLogAndLock(); err != nil {
		return err
	}
	os.Remove(h.path("ready"))
	h.say("starting, pid %d, run dir %s", os.Getpid(), runDir)
	if err := os.WriteFile(h.path("harness.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	if err := h.prepare(kubectl); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 4) // a component that stopped unasked

	etcd, err := startEtcd(h)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	h.say("etcd ready on 127.0.0.1:%d after %.2fs", h.state.EtcdClientPort, time.Since(start).Seconds())
	var components sync.WaitGroup // apiserver, controllers
	components.Go(func() {
		if err := runAPIServer(ctx, h); err != nil {
			errc <- fmt.Errorf("kube-apiserver: %w", err)
		}
	})
	go func() {
		if err := <-etcd.Err(); err != nil {
			errc <- fmt.Errorf("etcd: %w", err)
		}
	}()

	cfg, err := clientcmd.BuildConfigFromFlags("", h.adminKubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 100, 200
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	err = func() error {
		if err := waitReady(ctx, client, errc); err != nil {
			return err
		}
		h.say("apiserver ready at https://127.0.0.1:%d after %.2fs", h.state.APIServerPort, time.Since(start).Seconds())
		components.Go(func() {
			if err := runControllers(ctx, h); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("controllers: %w", err)
			}
		})
		n, err := applyBootstrap(ctx, cfg, bootstrapDir)
		if err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		h.say("bootstrap: applied %d objects from %q", n, bootstrapDir)
		tracker := &podTracker{pods: map[string]*trackedPod{}}
		k := &kubelet{h: h, pods: tracker}
		if _, err := k.serve(ctx, h.state.KubeletPort); err != nil {
			return fmt.Errorf("fake kubelet: %w", err)
		}
		if err := registerNode(ctx, client, h.state.KubeletPort); err != nil {
			return fmt.Errorf("register node: %w", err)
		}
		if err := startPodLoop(ctx, h, client, tracker); err != nil {
			return err
		}
		return nil
	}()
	if err == nil {
		secs := time.Since(start).Seconds()
		err = writeFileAtomic(h.path("ready"), fmt.Appendf(nil, "ready_seconds=%.2f\npid=%d\n", secs, os.Getpid()), 0o644)
		h.say("ready after %.2fs (env: %s)", secs, h.path("env"))
	}
	if err == nil {
		select {
		case <-ctx.Done():
		case err = <-errc:
		}
	}
	os.Remove(h.path("ready"))
	if ctx.Err() != nil {
		h.say("signal received, shutting down")
		if errors.Is(err, context.Canceled) {
			err = nil // stopped while starting: not a failure
		}
	}
	signaled := ctx.Err() != nil
	stop() // cancels ctx (stopping the components); a second signal now kills the process
	if !signaled {
		// Failed: exit now; etcd's data is safe without a clean close.
		return err
	}
	return errors.Join(err, h.shutdown(&components, etcd.Close))
}

// shutdown waits (bounded) for the apiserver and controllers, then stops etcd.
// Open streams (logs -f, port-forward, watches) must not hold the shutdown;
// exiting without a clean etcd close is safe (like SIGKILL).
func (h *harness) shutdown(components *sync.WaitGroup, closeEtcd func()) error {
	done := make(chan struct{})
	go func() { components.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(6 * time.Second):
		klog.Warning("harness: shutdown timed out waiting for the apiserver or controllers")
	}
	etcdDone := make(chan struct{})
	go func() { closeEtcd(); close(etcdDone) }()
	select {
	case <-etcdDone:
	case <-time.After(3 * time.Second):
		klog.Warning("harness: etcd did not close within 3s")
	}
	h.say("stopped")
	klog.Flush()
	return nil
}

func waitReady(ctx context.Context, c kubernetes.Interface, errc <-chan error) error {
	deadline := time.Now().Add(150 * time.Second)
	for {
		rc, cancel := context.WithTimeout(ctx, 2*time.Second)
		body, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(rc)
		cancel()
		if err == nil && string(body) == "ok" {
			return nil
		}
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("apiserver not ready after 150s: %v", err)
		}
	}
}

// setupLogAndLock sends stderr (klog, etcd, panics) to harness.log and takes
// an exclusive lock on the run dir.
func (h *harness) setupLogAndLock() error {
	lock, err := os.OpenFile(h.path("lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("another harness is running on %s", h.runDir)
	}
	h.lock = lock // unreachable, the GC would close it and so release the lock
	logf, err := os.OpenFile(h.path("harness.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if st, err := os.Stdout.Stat(); err == nil {
		if lst, err := logf.Stat(); err == nil {
			h.stdoutIsLog = os.SameFile(st, lst)
		}
	}
	fmt.Fprintf(logf, "==== harness start %s pid %d ====\n", time.Now().Format(time.RFC3339), os.Getpid())
	return unix.Dup2(int(logf.Fd()), 2)
}

// prepare creates or loads everything in the run dir except etcd data.
func (h *harness) prepare(kubectl string) error {
	statePath := h.path("state.json")
	if data, err := os.ReadFile(statePath); err == nil {
		if err := json.Unmarshal(data, &h.state); err != nil {
			return fmt.Errorf("%s: %w", statePath, err)
		}
	} else {
		ports, err := freePorts(4)
		if err != nil {
			return err
		}
		h.state = state{APIServerPort: ports[0], EtcdClientPort: ports[1], EtcdPeerPort: ports[2], KubeletPort: ports[3]}
		data, _ := json.MarshalIndent(h.state, "", "  ")
		if err := writeFileAtomic(statePath, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	h.pki = newPKI(h.runDir)
	if err := h.pki.ensure(); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	var err error
	h.tokensFile = h.path("tokens.csv")
	if h.tokens, err = ensureTokens(h.tokensFile); err != nil {
		return err
	}
	for _, d := range []string{"kubelet/logs", "kubelet/pods"} {
		if err := os.MkdirAll(h.path(d), 0o755); err != nil {
			return err
		}
	}
	server := "https://127.0.0.1:" + strconv.Itoa(h.state.APIServerPort)
	h.adminKubeconfig = h.path("admin.kubeconfig")
	if err := h.writeKubeconfig(h.adminKubeconfig, server, "admin", func(a *clientcmdapi.AuthInfo) error {
		var err error
		if a.ClientCertificateData, err = os.ReadFile(h.pki.adminCert); err != nil {
			return err
		}
		a.ClientKeyData, err = os.ReadFile(h.pki.adminKey)
		return err
	}); err != nil {
		return err
	}
	if err := h.writeKubeconfig(h.path("canopy.kubeconfig"), server, "canopy", func(a *clientcmdapi.AuthInfo) error {
		a.Token = h.tokens["canopy"]
		return nil
	}); err != nil {
		return err
	}
	if kubectl == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		kubectl = filepath.Join(filepath.Dir(exe), "kubectl")
	}
	if kubectl, err = filepath.Abs(kubectl); err != nil {
		return err
	}
	env := map[string]string{
		"RUN_DIR":                    h.runDir,
		"KUBE_SERVER":                server,
		"KUBE_CA_FILE":               h.pki.caCert,
		"ADMIN_KUBECONFIG":           h.adminKubeconfig,
		"ADMIN_CLIENT_CERT":          h.pki.adminCert,
		"ADMIN_CLIENT_KEY":           h.pki.adminKey,
		"CANOPY_UPSTREAM_KUBECONFIG": h.path("canopy.kubeconfig"),
		"CLIENT_CA_CERT":             h.pki.clientCACert,
		"CLIENT_CA_KEY":              h.pki.clientCAKey,
		"KUBECTL":                    kubectl,
		"HARNESS_PID":                strconv.Itoa(os.Getpid()),
		"HARNESS_LOG":                h.path("harness.log"),
		"KUBELET_LOG_DIR":            h.path("kubelet", "logs"),
		"KUBELET_PORT":               strconv.Itoa(h.state.KubeletPort),
		"NODE_NAME":                  nodeName,
		"ETCD_ENDPOINT":              "http://127.0.0.1:" + strconv.Itoa(h.state.EtcdClientPort),
	}
	for _, u := range tokenUsers {
		env["TOKEN_"+strings.ToUpper(u.name)] = h.tokens[u.name]
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by the Canopy integration harness; source it from a shell.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, shellQuote(env[k]))
	}
	return writeFileAtomic(h.path("env"), []byte(b.String()), 0o644)
}

func (h *harness) writeKubeconfig(path, server, user string, auth func(*clientcmdapi.AuthInfo) error) error {
	ca, err := os.ReadFile(h.pki.caCert)
	if err != nil {
		return err
	}
	a := clientcmdapi.NewAuthInfo()
	if err := auth(a); err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cluster := clientcmdapi.NewCluster()
	cluster.Server, cluster.CertificateAuthorityData = server, ca
	cfg.Clusters["harness"] = cluster
	cfg.AuthInfos[user] = a
	kctx := clientcmdapi.NewContext()
	kctx.Cluster, kctx.AuthInfo = "harness", user
	cfg.Contexts[user+"@harness"] = kctx
	cfg.CurrentContext = user + "@harness"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data, 0o644)
}

// shellQuote leaves plain values bare so that naive KEY=VALUE parsers work too.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:+=@,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
