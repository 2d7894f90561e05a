package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/obdorch/obdorch/orchestrator/controlplane"
	"github.com/obdorch/obdorch/orchestrator/store"
)

// clusterConfig configures what several replicas on one etcd cluster need:
// the address the others reach this one at, the token they authenticate
// each other with, and a secure connection to etcd.
type clusterConfig struct {
	advertiseAddr string
	replicaToken  string

	etcdCACert       string
	etcdCert         string
	etcdKey          string
	etcdUsername     string
	etcdPassword     string
	etcdPasswordFile string

	// etcdDialTimeout bounds connecting to etcd (store.Config.DialTimeout;
	// zero: its default). Not a flag: tests on a loaded machine raise it.
	etcdDialTimeout time.Duration
}

// clusterFlags are the flags of clusterConfig, in the order of the help.
var clusterFlags = []string{"advertise-addr", "replica-token", "etcd-cacert", "etcd-cert", "etcd-key", "etcd-username", "etcd-password", "etcd-password-file"}

func (c *clusterConfig) addClusterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.advertiseAddr, "advertise-addr", "", "control-plane `host:port` the other replicas reach this one at (default: the --listen address)")
	fs.StringVar(&c.replicaToken, "replica-token", "", "`token` (16+ printable characters, the same on every replica) replicas present to each other to forward calls; without it calls are not forwarded")
	fs.StringVar(&c.etcdCACert, "etcd-cacert", "", "CA bundle `file` (PEM) that etcd's server certificate must chain to; enables TLS to etcd")
	fs.StringVar(&c.etcdCert, "etcd-cert", "", "client certificate `file` (PEM) presented to etcd; enables TLS to etcd")
	fs.StringVar(&c.etcdKey, "etcd-key", "", "client key `file` (PEM) of --etcd-cert")
	fs.StringVar(&c.etcdUsername, "etcd-username", "", "etcd user `name`")
	fs.StringVar(&c.etcdPassword, "etcd-password", "", "etcd `password` (prefer --etcd-password-file or the environment)")
	fs.StringVar(&c.etcdPasswordFile, "etcd-password-file", "", "`file` holding the etcd password (trailing newline ignored)")
}

// validateCluster checks the cluster flags; every error names its flag.
func (c *config) validateCluster() error {
	var errs []error
	bad := func(flagName, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flagName, fmt.Sprintf(format, args...)))
	}
	if c.advertiseAddr != "" {
		host, port, err := net.SplitHostPort(c.advertiseAddr)
		switch {
		case err != nil:
			bad("advertise-addr", "%v", err)
		case host == "" || net.ParseIP(host).IsUnspecified() || port == "" || port == "0":
			bad("advertise-addr", "%q is not an address other replicas can reach: give a host and a port", c.advertiseAddr)
		}
	} else if c.etcdEndpoints != "" && c.replicaToken != "" {
		if host, _, err := net.SplitHostPort(c.listen); err == nil && (host == "" || net.ParseIP(host).IsUnspecified()) {
			bad("advertise-addr", "required when --listen (%q) names no host the other replicas can reach", c.listen)
		}
	}
	if c.replicaToken != "" {
		if err := controlplane.NewTokens().AddReplicaToken(c.replicaToken); err != nil {
			bad("replica-token", "%v", err)
		}
	}
	etcdFlags := map[string]string{
		"etcd-cacert": c.etcdCACert, "etcd-cert": c.etcdCert, "etcd-key": c.etcdKey,
		"etcd-username": c.etcdUsername, "etcd-password": c.etcdPassword, "etcd-password-file": c.etcdPasswordFile,
	}
	for _, name := range clusterFlags[2:] {
		if etcdFlags[name] != "" && c.etcdEndpoints == "" {
			bad(name, "only applies to an external etcd: give --etcd-endpoints")
		}
	}
	for _, f := range []string{"etcd-cacert", "etcd-cert", "etcd-key", "etcd-password-file"} {
		if p := etcdFlags[f]; p != "" {
			if _, err := os.Stat(p); err != nil {
				bad(f, "%v", err)
			}
		}
	}
	if (c.etcdCert == "") != (c.etcdKey == "") {
		bad("etcd-cert", "--etcd-cert and --etcd-key go together")
	}
	if c.etcdPassword != "" && c.etcdPasswordFile != "" {
		bad("etcd-password", "give --etcd-password or --etcd-password-file, not both")
	}
	hasPassword := c.etcdPassword != "" || c.etcdPasswordFile != ""
	if c.etcdUsername == "" && hasPassword {
		bad("etcd-username", "required with an etcd password")
	}
	if c.etcdUsername != "" && !hasPassword {
		bad("etcd-password", "required with --etcd-username (or --etcd-password-file)")
	}
	return errors.Join(errs...)
}

// etcdSecurity fills the TLS and credentials of the store's configuration
// from the etcd flags. Errors name the flag whose file failed.
func (c *clusterConfig) etcdSecurity(sc *store.Config) error {
	if c.etcdCACert != "" || c.etcdCert != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.etcdCACert != "" {
			pem, err := os.ReadFile(c.etcdCACert)
			if err != nil {
				return fmt.Errorf("--etcd-cacert: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("--etcd-cacert: no PEM certificate in %s", c.etcdCACert)
			}
			tc.RootCAs = pool
		}
		if c.etcdCert != "" {
			cert, err := tls.LoadX509KeyPair(c.etcdCert, c.etcdKey)
			if err != nil {
				return fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		sc.TLS = tc
	}
	sc.DialTimeout = c.etcdDialTimeout
	sc.Username, sc.Password = c.etcdUsername, c.etcdPassword
	if c.etcdPasswordFile != "" {
		b, err := os.ReadFile(c.etcdPasswordFile)
		if err != nil {
			return fmt.Errorf("--etcd-password-file: %w", err)
		}
		sc.Password = strings.TrimRight(string(b), "\r\n")
		if sc.Password == "" {
			return fmt.Errorf("--etcd-password-file: %s is empty", c.etcdPasswordFile)
		}
	}
	return nil
}

// newForwarder builds the forwarder of a replica that shares its store with
// others (--replica-token given), with the control plane's TLS settings
// toward the other replicas: they are verified against --client-ca (or the
// system roots without it) and shown this replica's certificate. Nil
// without --replica-token.
func newForwarder(cfg *config, st *store.Store, log *slog.Logger) (*controlplane.Forwarder, error) {
	if cfg.replicaToken == "" {
		if cfg.etcdEndpoints != "" {
			log.Warn("no --replica-token: calls for sessions other replicas hold are answered UNAVAILABLE naming the owner, not forwarded")
		}
		return nil, nil
	}
	opts := controlplane.ForwardOptions{Replica: cfg.replica, Token: cfg.replicaToken, Registry: st, Logger: log.With("component", "forward")}
	if cfg.tlsCert != "" {
		tc, err := controlplane.ReplicaClientTLSConfig(cfg.tlsCert, cfg.tlsKey, cfg.clientCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key/--client-ca: %w", err)
		}
		opts.TLS = tc
	}
	f, err := controlplane.NewForwarder(opts)
	if err != nil {
		return nil, fmt.Errorf("--replica-token: %w", err)
	}
	return f, nil
}

// register records this replica's control-plane address in the store's
// registry: --advertise-addr, or the address the listener is bound to.
func register(ctx context.Context, cfg *config, st *store.Store, bound net.Addr) error {
	addr := cfg.advertiseAddr
	if addr == "" {
		addr = bound.String()
	}
	if err := st.Register(ctx, addr); err != nil {
		return fmt.Errorf("--advertise-addr: %w", err)
	}
	return nil
}
