package main

// The fake kubelet: the HTTPS endpoints the apiserver proxies pods/exec,
// pods/attach, pods/portforward and pods/log to. Streaming (SPDY, and
// WebSocket when a client speaks it directly) is handled by Kubernetes' own
// cri-streaming packages; this file supplies a "runtime" that runs exec'd
// commands on the host, echoes attach input, dials loopback ports and serves
// plain-text log files.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/creack/pty"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
	utilexec "k8s.io/utils/exec"
)

const (
	streamIdleTimeout     = time.Hour
	streamCreationTimeout = remotecommand.DefaultStreamCreationTimeout
)

type kubelet struct {
	h    *harness
	pods *podTracker
}

// serve listens on 127.0.0.1:port with the kubelet serving cert and requires
// a client cert from the client CA (the apiserver's kubelet client cert).
func (k *kubelet) serve(ctx context.Context, port int) (*http.Server, error) {
	cert, err := tls.LoadX509KeyPair(k.h.pki.kubeletCert, k.h.pki.kubeletKey)
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(k.h.pki.clientCACert)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	for _, p := range []string{"/exec/{ns}/{pod}/{container}", "/exec/{ns}/{pod}/{uid}/{container}"} {
		mux.HandleFunc(p, k.exec)
	}
	for _, p := range []string{"/attach/{ns}/{pod}/{container}", "/attach/{ns}/{pod}/{uid}/{container}"} {
		mux.HandleFunc(p, k.attach)
	}
	for _, p := range []string{"/portForward/{ns}/{pod}", "/portForward/{ns}/{pod}/{uid}"} {
		mux.HandleFunc(p, k.portForward)
	}
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", k.logs)

	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler: mux,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pool,
			NextProtos:   []string{"http/1.1"}, // SPDY upgrades need HTTP/1.1
		},
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.Errorf("fake kubelet: %v", err)
		}
	}()
	go func() { <-ctx.Done(); srv.Close() }()
	return srv, nil
}

// lookup finds a running pod of ours, or writes 404.
func (k *kubelet) lookup(w http.ResponseWriter, r *http.Request) (*trackedPod, bool) {
	p := k.pods.get(r.PathValue("ns"), r.PathValue("pod"))
	if p == nil || (r.PathValue("uid") != "" && r.PathValue("uid") != p.uid) {
		http.Error(w, "pod does not exist", http.StatusNotFound)
		return nil, false
	}
	if c := r.PathValue("container"); c != "" && !p.hasContainer(c) {
		http.Error(w, fmt.Sprintf("container %q not found in pod %s/%s", c, p.ns, p.name), http.StatusNotFound)
		return nil, false
	}
	return p, true
}

func (k *kubelet) exec(w http.ResponseWriter, r *http.Request) {
	p, ok := k.lookup(w, r)
	if !ok {
		return
	}
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cmd := r.URL.Query()["command"]
	if len(cmd) == 0 {
		http.Error(w, "no command", http.StatusBadRequest)
		return
	}
	remotecommand.ServeExec(w, r, &runtime{k, p}, p.ns+"/"+p.name, p.uid, r.PathValue("container"), cmd, opts,
		streamIdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

func (k *kubelet) attach(w http.ResponseWriter, r *http.Request) {
	p, ok := k.lookup(w, r)
	if !ok {
		return
	}
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	remotecommand.ServeAttach(w, r, &runtime{k, p}, p.ns+"/"+p.name, p.uid, r.PathValue("container"), opts,
		streamIdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

func (k *kubelet) portForward(w http.ResponseWriter, r *http.Request) {
	p, ok := k.lookup(w, r)
	if !ok {
		return
	}
	// NewV4Options only matters for (direct) WebSocket clients; SPDY
	// requests carry the port per stream.
	opts, err := portforward.NewV4Options(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	portforward.ServePortForward(w, r, &runtime{k, p}, p.ns+"/"+p.name, p.uid, opts,
		streamIdleTimeout, streamCreationTimeout, portforward.SupportedProtocols)
}

// runtime implements remotecommand.Executor/Attacher and
// portforward.PortForwarder for one pod.
type runtime struct {
	k *kubelet
	p *trackedPod
}

// ExecInContainer runs cmd on the host in the pod's own folder.
func (rt *runtime) ExecInContainer(ctx context.Context, _, _, container string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	dir := rt.k.h.podDir(rt.p.ns, rt.p.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	c := exec.CommandContext(ctx, cmd[0], cmd[1:]...)
	c.Dir = dir
	c.Env = append(os.Environ(), "HOSTNAME="+rt.p.name, "POD_NAME="+rt.p.name,
		"POD_NAMESPACE="+rt.p.ns, "CONTAINER_NAME="+container)
	// A child that keeps stdout open must not hang the exec forever.
	c.WaitDelay = 2 * time.Second
	var err error
	if tty {
		err = runWithPTY(c, in, out, resize)
	} else {
		err = runWithPipes(c, in, out, errw)
	}
	var ee *exec.ExitError
	var notFound *exec.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		// ServeExec type-asserts utilexec.ExitError to send the exit code.
		return utilexec.ExitErrorWrapper{ExitError: ee}
	case errors.As(err, &notFound):
		// What a shell and container runtimes report for a missing binary.
		msg := fmt.Sprintf("exec: %q: %v\r\n", cmd[0], notFound.Err)
		if errw != nil {
			io.WriteString(errw, msg)
		} else if out != nil {
			io.WriteString(out, msg)
		}
		return utilexec.CodeExitError{Err: err, Code: 127}
	}
	return err
}

func runWithPipes(c *exec.Cmd, in io.Reader, out, errw io.Writer) error {
	if out != nil {
		c.Stdout = out
	}
	if errw != nil {
		c.Stderr = errw
	}
	var stdin io.WriteCloser
	if in != nil {
		// Not c.Stdin = in: then Wait would also wait for the client to close
		// stdin, so `exec -i ... -- true` would hang.
		var err error
		if stdin, err = c.StdinPipe(); err != nil {
			return err
		}
	}
	if err := c.Start(); err != nil {
		return err
	}
	if stdin != nil {
		go func() { io.Copy(stdin, in); stdin.Close() }()
	}
	return c.Wait()
}

// runWithPTY gives the command a real pseudo-terminal, so `exec -it -- sh`
// behaves like a shell; resize events resize it.
func runWithPTY(c *exec.Cmd, in io.Reader, out io.Writer, resize <-chan remotecommand.TerminalSize) error {
	f, err := pty.Start(c)
	if err != nil {
		return err
	}
	defer f.Close()
	go func() {
		for s := range resize {
			pty.Setsize(f, &pty.Winsize{Rows: s.Height, Cols: s.Width})
		}
	}()
	if in != nil {
		go io.Copy(f, in)
	}
	copied := make(chan struct{})
	go func() {
		if out != nil {
			io.Copy(out, f) // ends with EIO once the command exits
		} else {
			io.Copy(io.Discard, f)
		}
		close(copied)
	}()
	err = c.Wait()
	select { // drain what the command wrote last
	case <-copied:
	case <-time.After(time.Second):
	}
	return err
}

// AttachContainer echoes stdin to stdout and appends it to the container's
// log. Without stdin it streams new log lines, like attaching to a container
// that prints.
func (rt *runtime) AttachContainer(ctx context.Context, _, _, container string, in io.Reader, out, _ io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	if resize != nil {
		go func() {
			for range resize {
			}
		}()
	}
	path := rt.k.h.logPath(rt.p.ns, rt.p.name, container)
	if in == nil {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		f.Seek(0, io.SeekEnd)
		if out == nil {
			out = nopWriteCloser{io.Discard}
		}
		followFile(ctx, rt.p.gone, f, nil, func(b []byte) bool {
			_, err := out.Write(b)
			return err == nil
		})
		return nil
	}
	logf, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	buf := make([]byte, 32*1024)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			echo, logged := buf[:n], buf[:n]
			if tty { // a raw terminal sends CR for Enter; echo it as a terminal would
				echo = bytes.ReplaceAll(echo, []byte("\r"), []byte("\r\n"))
				logged = bytes.ReplaceAll(logged, []byte("\r"), []byte("\n"))
			}
			if out != nil {
				if _, werr := out.Write(echo); werr != nil {
					return nil
				}
			}
			logf.Write(logged)
		}
		if err != nil {
			return nil // EOF: the client closed stdin
		}
	}
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// PortForward connects the stream to 127.0.0.1:port on the host.
func (rt *runtime) PortForward(ctx context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return fmt.Errorf("failed to connect to localhost:%d inside namespace of pod %s/%s: %w", port, rt.p.ns, rt.p.name, err)
	}
	defer conn.Close()
	// Client -> port; a client half-close becomes a TCP half-close.
	go func() { io.Copy(conn, stream); conn.(*net.TCPConn).CloseWrite() }()
	// Port -> client; the forwarded connection ends when the port's side does.
	done := make(chan struct{})
	go func() { io.Copy(stream, conn); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}
