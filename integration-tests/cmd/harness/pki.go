package main

// Certificates, keys and static tokens. Generated once per run dir and reused
// on every later start, so that clients (and tests holding a CA or a token)
// keep working across a harness restart.
//
// All keys are ECDSA P-256 in PKCS#8 PEM ("PRIVATE KEY"), which openssl,
// rustls/rcgen and Go all read.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// pki holds the paths of every generated file (absolute).
type pki struct {
	dir                                 string
	caCert, caKey                       string // serving CA: apiserver + kubelet serving certs
	clientCACert, clientCAKey           string // client CA: admin, kubelet client, tests' own certs
	apiserverCert, apiserverKey         string
	adminCert, adminKey                 string
	kubeletCert, kubeletKey             string // fake kubelet's serving cert
	kubeletClientCert, kubeletClientKey string // apiserver -> kubelet client cert
	saKey, saPub                        string // service-account token signing key
}

func newPKI(runDir string) *pki {
	d := filepath.Join(runDir, "pki")
	p := func(n string) string { return filepath.Join(d, n) }
	return &pki{
		dir:    d,
		caCert: p("ca.crt"), caKey: p("ca.key"),
		clientCACert: p("client-ca.crt"), clientCAKey: p("client-ca.key"),
		apiserverCert: p("apiserver.crt"), apiserverKey: p("apiserver.key"),
		adminCert: p("admin.crt"), adminKey: p("admin.key"),
		kubeletCert: p("kubelet.crt"), kubeletKey: p("kubelet.key"),
		kubeletClientCert: p("kubelet-client.crt"), kubeletClientKey: p("kubelet-client.key"),
		saKey: p("sa.key"), saPub: p("sa.pub"),
	}
}

// ensure creates whatever is missing. Existing files are never rewritten.
func (p *pki) ensure() error {
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return err
	}
	ca, caKey, err := p.ensureCA(p.caCert, p.caKey, "canopy-harness-serving-ca")
	if err != nil {
		return err
	}
	clientCA, clientCAKey, err := p.ensureCA(p.clientCACert, p.clientCAKey, "canopy-harness-client-ca")
	if err != nil {
		return err
	}
	loopback := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	leaves := []struct {
		cert, key string
		subject   pkix.Name
		dns       []string
		ips       []net.IP
		server    bool
		ca        *x509.Certificate
		caKey     crypto.Signer
	}{
		{p.apiserverCert, p.apiserverKey, pkix.Name{CommonName: "kube-apiserver"},
			[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}, loopback, true, ca, caKey},
		{p.kubeletCert, p.kubeletKey, pkix.Name{CommonName: "fake-node"},
			[]string{"localhost", nodeName}, loopback, true, ca, caKey},
		{p.adminCert, p.adminKey, pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
			nil, nil, false, clientCA, clientCAKey},
		{p.kubeletClientCert, p.kubeletClientKey, pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}},
			nil, nil, false, clientCA, clientCAKey},
	}
	for _, l := range leaves {
		if exists(l.cert) && exists(l.key) {
			continue
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      l.subject,
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().AddDate(10, 0, 0),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			DNSNames:     l.dns,
			IPAddresses:  l.ips,
		}
		if l.server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		} else {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, l.ca, &key.PublicKey, l.caKey)
		if err != nil {
			return err
		}
		if err := writeKey(l.key, key); err != nil {
			return err
		}
		if err := writePEM(l.cert, "CERTIFICATE", der, 0o644); err != nil {
			return err
		}
	}
	if !exists(p.saKey) || !exists(p.saPub) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			return err
		}
		if err := writeKey(p.saKey, key); err != nil {
			return err
		}
		if err := writePEM(p.saPub, "PUBLIC KEY", pub, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ensureCA loads a CA pair, or creates a self-signed one.
func (p *pki) ensureCA(certPath, keyPath, cn string) (*x509.Certificate, crypto.Signer, error) {
	if exists(certPath) && exists(keyPath) {
		cert, err := readCert(certPath)
		if err != nil {
			return nil, nil, err
		}
		key, err := readKey(keyPath)
		return cert, key, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	// The key is written first: a cert without its key would be "existing" next time.
	if err := writeKey(keyPath, key); err != nil {
		return nil, nil, err
	}
	if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writeKey writes PKCS#8 PEM, mode 0644: the harness is a test fixture and
// tests must be able to read the client CA key to sign their own certs.
func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "PRIVATE KEY", der, 0o644)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

// writeFileAtomic writes via a temp file + rename so a reader (or a crash)
// never sees half a file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	return x509.ParseCertificate(b.Bytes)
}

func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New(path + ": not a signing key")
	}
	return s, nil
}

// tokenUsers are the static-token users; the value is the extra group.
// Everyone also gets system:authenticated from the apiserver itself.
var tokenUsers = []struct{ name, group string }{
	{"admin", "system:masters"},
	{"canopy", "canopy:proxies"},
	{"alice", ""}, {"bob", ""}, {"carol", ""}, {"dave", ""}, {"erin", ""}, {"nobody", ""},
}

// ensureTokens creates tokens.csv (for --token-auth-file) once and returns
// user -> token.
func ensureTokens(path string) (map[string]string, error) {
	if !exists(path) {
		var b strings.Builder
		for i, u := range tokenUsers {
			buf := make([]byte, 24)
			if _, err := rand.Read(buf); err != nil {
				return nil, err
			}
			// token,user,uid[,"group1,group2"]
			fmt.Fprintf(&b, "%s,%s,uid-%d-%s", hex.EncodeToString(buf), u.name, i+1, u.name)
			if u.group != "" {
				fmt.Fprintf(&b, ",%q", u.group)
			}
			b.WriteString("\n")
		}
		if err := writeFileAtomic(path, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tokens := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.SplitN(line, ",", 3)
		if len(f) >= 2 {
			tokens[f[1]] = f[0]
		}
	}
	for _, u := range tokenUsers {
		if tokens[u.name] == "" {
			return nil, fmt.Errorf("%s: no token for user %s", path, u.name)
		}
	}
	return tokens, nil
}
