package controlplane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// testCA is a certificate authority that issues certificates into a test's
// temporary directory.
type testCA struct {
	dir  string
	name string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM
	pool *x509.CertPool
}

// randomSerial returns a fresh certificate serial number.
func randomSerial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{dir: dir, name: name, cert: cert, key: key, pool: x509.NewCertPool()}
	ca.pool.AddCert(cert)
	ca.file = writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
	return ca
}

// issue signs a certificate for the loopback addresses (server) or for a
// client and writes it and its key; it returns the files and the pair.
func (ca *testCA) issue(t *testing.T, name string, server bool) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writePEM(t, filepath.Join(ca.dir, name+".pem"), "CERTIFICATE", der)
	keyFile = writePEM(t, filepath.Join(ca.dir, name+"-key.pem"), "PRIVATE KEY", keyDER)
	pair, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pair
}

func writePEM(t *testing.T, path, typ string, der []byte) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// serveHealth serves only the gRPC health service with creds on a loopback
// port and returns its address.
func serveHealth(t *testing.T, creds credentials.TransportCredentials) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(creds))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return lis.Addr().String()
}

// checkHealth calls Health.Check at target with the client TLS config and
// returns the negotiated TLS version.
func checkHealth(t *testing.T, target string, cfg *tls.Config) (uint16, error) {
	t.Helper()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatalf("grpc.NewClient(%s) = %v", target, err)
	}
	defer conn.Close()
	var p peer.Peer
	_, err = healthpb.NewHealthClient(conn).Check(testContext(t), &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
	if err != nil {
		return 0, err
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		t.Fatalf("peer auth info is %T, want TLS", p.AuthInfo)
	}
	return info.State.Version, nil
}

func TestServerTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	otherCA := newTestCA(t, dir, "other-ca")
	serverCert, serverKey, _ := ca.issue(t, "server", true)
	_, _, clientPair := ca.issue(t, "client", false)
	_, _, strangerPair := otherCA.issue(t, "stranger", false)

	tlsCreds, err := ServerTLS(serverCert, serverKey, "")
	if err != nil {
		t.Fatalf("ServerTLS(no client CA) = %v", err)
	}
	mtlsCreds, err := ServerTLS(serverCert, serverKey, ca.file)
	if err != nil {
		t.Fatalf("ServerTLS(client CA) = %v", err)
	}
	tlsAddr := serveHealth(t, tlsCreds)
	mtlsAddr := serveHealth(t, mtlsCreds)
	_, port, _ := net.SplitHostPort(tlsAddr)

	tests := []struct {
		name        string
		target      string
		client      *tls.Config
		ok          bool
		wantVersion uint16
	}{
		{name: "tls by IP", target: tlsAddr, client: &tls.Config{RootCAs: ca.pool}, ok: true, wantVersion: tls.VersionTLS13},
		{name: "tls by name", target: "localhost:" + port, client: &tls.Config{RootCAs: ca.pool}, ok: true, wantVersion: tls.VersionTLS13},
		{name: "tls 1.2 client", target: tlsAddr, client: &tls.Config{RootCAs: ca.pool, MaxVersion: tls.VersionTLS12}, ok: true, wantVersion: tls.VersionTLS12},
		{name: "tls 1.1 client refused", target: tlsAddr, client: &tls.Config{RootCAs: ca.pool, MaxVersion: tls.VersionTLS11}},
		{name: "server from another CA refused", target: tlsAddr, client: &tls.Config{RootCAs: otherCA.pool}},
		{name: "mtls with client cert", target: mtlsAddr, client: &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{clientPair}}, ok: true, wantVersion: tls.VersionTLS13},
		{name: "mtls tls 1.2 with client cert", target: mtlsAddr, client: &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{clientPair}, MaxVersion: tls.VersionTLS12}, ok: true, wantVersion: tls.VersionTLS12},
		{name: "mtls without client cert refused", target: mtlsAddr, client: &tls.Config{RootCAs: ca.pool}},
		{name: "mtls tls 1.2 without client cert refused", target: mtlsAddr, client: &tls.Config{RootCAs: ca.pool, MaxVersion: tls.VersionTLS12}},
		{name: "mtls client cert from another CA refused", target: mtlsAddr, client: &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{strangerPair}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			version, err := checkHealth(t, tt.target, tt.client)
			if !tt.ok {
				if status.Code(err) != codes.Unavailable {
					t.Errorf("Health.Check = %v, want Unavailable (handshake refused)", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Health.Check = %v", err)
			}
			if version != tt.wantVersion {
				t.Errorf("negotiated %s, want %s", tls.VersionName(version), tls.VersionName(tt.wantVersion))
			}
		})
	}
}

func TestServerTLSErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	cert, key, _ := ca.issue(t, "server", true)
	otherCert, _, _ := ca.issue(t, "other", true)
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name              string
		cert, key, caFile string
		want              []string
	}{
		{name: "missing cert", cert: missing, key: key, want: []string{"certificate", missing}},
		{name: "missing key", cert: cert, key: missing, want: []string{"key", missing}},
		{name: "garbage cert", cert: garbage, key: key, want: []string{garbage}},
		{name: "garbage key", cert: cert, key: garbage, want: []string{garbage}},
		{name: "key of another cert", cert: otherCert, key: key, want: []string{otherCert, key}},
		{name: "missing client CA", cert: cert, key: key, caFile: missing, want: []string{"client CA", missing}},
		{name: "garbage client CA", cert: cert, key: key, caFile: garbage, want: []string{"client CA", garbage, "no PEM certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds, err := ServerTLS(tt.cert, tt.key, tt.caFile)
			if err == nil {
				t.Fatalf("ServerTLS(%s, %s, %q) = %v, want an error", tt.cert, tt.key, tt.caFile, creds.Info())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ServerTLS error %q lacks %q", err, w)
				}
			}
		})
	}
}
