package fake

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Certificate is a throwaway certificate authority and a server certificate
// it signed, for serving the fake over TLS the way openOBD is served. Clients
// trust CAPEM (or RootCAs); the CA key is discarded once the server
// certificate is signed.
type Certificate struct {
	// CAPEM is the CA certificate in PEM form, for clients such as grpcurl
	// (-cacert) or the orchestrator (--openobd-ca).
	CAPEM []byte
	// Server is the server's certificate chain and key.
	Server tls.Certificate
	// Hosts are the DNS names and IP addresses the server certificate is
	// valid for.
	Hosts []string
}

// certificateValidity is how long a generated certificate is valid; a fake
// runs for minutes to days.
const certificateValidity = 30 * 24 * time.Hour

// NewCertificate generates a CA and a server certificate for hosts (DNS
// names or IP addresses; at least one).
func NewCertificate(hosts ...string) (*Certificate, error) {
	if len(hosts) == 0 {
		return nil, errors.New("fake: NewCertificate needs at least one host")
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("fake: CA key: %w", err)
	}
	caTemplate := &x509.Certificate{
		SerialNumber:          serialNumber(),
		Subject:               pkix.Name{CommonName: "fake openOBD CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certificateValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("fake: CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("fake: CA certificate: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("fake: server key: %w", err)
	}
	template := &x509.Certificate{
		SerialNumber: serialNumber(),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certificateValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			template.IPAddresses = append(template.IPAddresses, ip)
		} else {
			template.DNSNames = append(template.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("fake: server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("fake: server certificate: %w", err)
	}
	return &Certificate{
		CAPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Server: tls.Certificate{
			Certificate: [][]byte{der, caDER},
			PrivateKey:  key,
			Leaf:        leaf,
		},
		Hosts: append([]string(nil), hosts...),
	}, nil
}

// serialNumber returns a random 128-bit certificate serial number.
func serialNumber() *big.Int {
	// rand.Int reads from crypto/rand, which does not fail on supported
	// platforms (Go 1.24+ crashes the program rather than return an error).
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	return n
}

// ServerConfig returns a TLS configuration (1.2 and later) serving the
// server certificate.
func (c *Certificate) ServerConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{c.Server}}
}

// RootCAs returns a pool holding only the CA, for clients.
func (c *Certificate) RootCAs() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CAPEM)
	return pool
}
