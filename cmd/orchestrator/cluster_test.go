package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/obdorch/obdorch/orchestrator/store"
)

func TestClusterConfigErrorsNameTheFlag(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f.pem")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--client-id", "id", "--client-secret", "secret"}
	etcd := append([]string{"--etcd-endpoints", "https://10.0.0.1:2379"}, base...)
	tests := []struct {
		name string
		args []string
		flag string
	}{
		{"advertise without port", append([]string{"--advertise-addr", "10.0.0.5"}, base...), "--advertise-addr"},
		{"advertise unspecified", append([]string{"--advertise-addr", "0.0.0.0:7600"}, base...), "--advertise-addr"},
		{"listen on all without advertise", append([]string{"--listen", "0.0.0.0:7600", "--insecure", "--replica-token", "replica-token-0123456789"}, etcd...), "--advertise-addr"},
		{"short replica token", append([]string{"--replica-token", "short"}, base...), "--replica-token"},
		{"cacert without endpoints", append([]string{"--etcd-cacert", file}, base...), "--etcd-cacert"},
		{"username without endpoints", append([]string{"--etcd-username", "u", "--etcd-password", "p"}, base...), "--etcd-username"},
		{"missing cacert", append([]string{"--etcd-cacert", filepath.Join(dir, "none.pem")}, etcd...), "--etcd-cacert"},
		{"missing key file", append([]string{"--etcd-cert", file, "--etcd-key", filepath.Join(dir, "none.pem")}, etcd...), "--etcd-key"},
		{"cert without key", append([]string{"--etcd-cert", file}, etcd...), "--etcd-cert"},
		{"password without user", append([]string{"--etcd-password", "p"}, etcd...), "--etcd-username"},
		{"user without password", append([]string{"--etcd-username", "u"}, etcd...), "--etcd-password"},
		{"both passwords", append([]string{"--etcd-username", "u", "--etcd-password", "p", "--etcd-password-file", file}, etcd...), "--etcd-password"},
		{"missing password file", append([]string{"--etcd-username", "u", "--etcd-password-file", filepath.Join(dir, "none")}, etcd...), "--etcd-password-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, env(nil), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.flag) {
				t.Errorf("parseConfig(%q) = %v, want an error naming %s", tt.args, err, tt.flag)
			}
		})
	}

	c, err := parseConfig(base, env(map[string]string{
		"ORCHESTRATOR_ETCD_ENDPOINTS": "https://10.0.0.1:2379", "ORCHESTRATOR_ETCD_USERNAME": "obdorch",
		"ORCHESTRATOR_ETCD_PASSWORD_FILE": file, "ORCHESTRATOR_REPLICA_TOKEN": "replica-token-0123456789",
		"ORCHESTRATOR_ADVERTISE_ADDR": "10.0.0.5:7600",
	}), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseConfig with the cluster flags from the environment: %v", err)
	}
	var sc store.Config
	if err := c.etcdSecurity(&sc); err != nil || sc.Username != "obdorch" || sc.Password != "x" || c.advertiseAddr != "10.0.0.5:7600" || c.replicaToken == "" {
		t.Errorf("cluster flags from the environment: %+v, store user %q password %q, %v", c.clusterConfig, sc.Username, sc.Password, err)
	}
}

// TestStoreOverTLSWithClientCertificates opens the store on an etcd that
// serves TLS and requires client certificates, with the etcd flags; without
// the client certificate the connection is refused.
func TestStoreOverTLSWithClientCertificates(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	emb, err := store.StartEmbedded(t.Context(), store.EmbeddedConfig{
		Dir: filepath.Join(dir, "etcd"), UnsafeNoFsync: true,
		TLS: &store.EmbeddedTLS{CertFile: pki.serverCert, KeyFile: pki.serverKey, ClientCAFile: pki.ca},
	})
	if err != nil {
		t.Fatalf("StartEmbedded with TLS: %v", err)
	}
	t.Cleanup(func() { _ = emb.Close() })
	ep := emb.Endpoints()[0]
	if !strings.HasPrefix(ep, "https://") {
		t.Fatalf("endpoint %q, want https", ep)
	}
	base := []string{"--client-id", "id", "--client-secret", "secret", "--replica", "r1", "--etcd-endpoints", ep, "--etcd-cacert", pki.ca}
	log := slog.New(slog.DiscardHandler)

	cfg, err := parseConfig(append([]string{"--etcd-cert", pki.clientCert, "--etcd-key", pki.clientKey}, base...), env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.etcdDialTimeout = 30 * time.Second // a loaded machine
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	st, closeStore, err := openStore(ctx, cfg, log)
	if err != nil {
		t.Fatalf("openStore over TLS with a client certificate: %v", err)
	}
	if err := st.Register(ctx, "10.0.0.5:7600"); err != nil {
		t.Errorf("Register over TLS: %v", err)
	}
	if addr, ok, err := st.ReplicaAddress(ctx, "r1"); err != nil || !ok || addr != "10.0.0.5:7600" {
		t.Errorf("ReplicaAddress over TLS = %q, %v, %v", addr, ok, err)
	}
	closeStore()

	cfg, err = parseConfig(append([]string{"--replica", "r2"}, base...), env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.etcdDialTimeout = 5 * time.Second // refused: this only bounds the wait for the refusal
	if _, closeStore, err := openStore(ctx, cfg, log); err == nil {
		closeStore()
		t.Error("openStore without a client certificate succeeded, want it refused")
	}
}

type testPKI struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

// newTestPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all signed by the CA, as PEM files in dir.
func newTestPKI(t *testing.T, dir string) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test etcd CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage, ips []net.IP) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "PRIVATE KEY", keyDER)
	}
	p := testPKI{ca: write("ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = leaf(2, "server", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	p.clientCert, p.clientKey = leaf(3, "client", x509.ExtKeyUsageClientAuth, nil)
	return p
}

// TestStoreWithEtcdCredentials opens the store as an etcd user limited to
// the orchestrator's prefix, with the password from a file; a wrong
// password is refused.
func TestStoreWithEtcdCredentials(t *testing.T) {
	dir := t.TempDir()
	emb, err := store.StartEmbedded(t.Context(), store.EmbeddedConfig{Dir: filepath.Join(dir, "etcd"), UnsafeNoFsync: true})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(func() { _ = emb.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	root, err := clientv3.New(clientv3.Config{Endpoints: emb.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, step := range []func() error{
		func() error { _, err := root.RoleAdd(ctx, "root"); return err },
		func() error { _, err := root.UserAdd(ctx, "root", "root-password"); return err },
		func() error { _, err := root.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := root.RoleAdd(ctx, "obdorch"); return err },
		func() error {
			_, err := root.RoleGrantPermission(ctx, "obdorch", "/obdorch/", clientv3.GetPrefixRangeEnd("/obdorch/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := root.UserAdd(ctx, "obdorch", "obdorch-password"); return err },
		func() error { _, err := root.UserGrantRole(ctx, "obdorch", "obdorch"); return err },
		func() error { _, err := root.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("setting up etcd users: %v", err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	open := func(replica, password string) (*store.Store, func(), error) {
		t.Helper()
		pw := filepath.Join(dir, replica+"-password")
		if err := os.WriteFile(pw, []byte(password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := parseConfig([]string{"--client-id", "id", "--client-secret", "secret", "--replica", replica,
			"--etcd-endpoints", emb.Endpoints()[0], "--etcd-username", "obdorch", "--etcd-password-file", pw}, env(nil), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		// etcd checks passwords with bcrypt: slow on a loaded machine.
		cfg.etcdDialTimeout = 30 * time.Second
		return openStore(ctx, cfg, log)
	}
	st, closeStore, err := open("r1", "obdorch-password")
	if err != nil {
		t.Fatalf("openStore as the etcd user: %v", err)
	}
	if err := st.Register(ctx, "10.0.0.5:7600"); err != nil {
		t.Errorf("Register as the etcd user: %v", err)
	}
	closeStore()
	if _, closeStore, err := open("r2", "wrong-password"); err == nil {
		closeStore()
		t.Error("openStore with a wrong etcd password succeeded, want it refused")
	}
}
