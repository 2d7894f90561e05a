package controlplane

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc/credentials"
)

// ServerTLS returns transport credentials for the control plane from PEM
// files: the server's certificate chain and its private key and, when
// clientCAFile is not empty, the CA bundle that client certificates must
// chain to (mutual TLS: a client without a valid certificate is refused
// during the handshake). TLS 1.2 is the minimum; TLS 1.3 is negotiated with
// every client that supports it. The files are read once: replacing a
// certificate needs a restart. Errors name the file that failed.
func ServerTLS(certFile, keyFile, clientCAFile string) (credentials.TransportCredentials, error) {
	cfg, err := ServerTLSConfig(certFile, keyFile, clientCAFile)
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// ServerTLSConfig is the TLS configuration of ServerTLS, for other listeners
// that follow the control plane's rules (the admin HTTP listener).
func ServerTLSConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("tls certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls certificate %s with key %s: %w", certFile, keyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if clientCAFile != "" {
		caPEM, err := os.ReadFile(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("tls client CA %s: %w", clientCAFile, errNoCertificates)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

var errNoCertificates = errors.New("no PEM certificate found")

// ReplicaClientTLSConfig is the TLS configuration a replica uses to call
// the other replicas' control planes: it presents its own control-plane
// certificate (so replicas that require client certificates accept it) and
// verifies theirs against caFile, or the system roots when caFile is empty.
// Errors name the file that failed.
func ReplicaClientTLSConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls certificate %s with key %s: %w", certFile, keyFile, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if caFile != "" {
		caPEM, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("tls CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("tls CA %s: %w", caFile, errNoCertificates)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}
