package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/obdorch/obdorch/cmd/internal/gcpercent"
	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/partner"
)

// config is the whole configuration of the service. Every flag has an
// environment twin (ORCHESTRATOR_<FLAG>, and Jifeline's own OPENOBD_* names
// for credentials and endpoints); a flag given on the command line wins.
type config struct {
	// Control plane.
	listen      string
	tlsCert     string
	tlsKey      string
	clientCA    string
	insecure    bool
	authTokens  string
	shutdownFor time.Duration

	// Store.
	dataDir       string
	etcdEndpoints string
	replica       string
	storeLeaseTTL time.Duration

	// openOBD.
	openobdHost     string
	openobdPort     int
	clientID        string
	clientSecret    string
	clusterID       string
	openobdInsecure bool
	openobdCA       string
	// demoRoots trusts the demo fake's generated CA (set by --demo, not a
	// flag).
	demoRoots *x509.CertPool

	// Partner API.
	partnerURL  string
	ticketWrite bool

	// Intake.
	intakeState     string
	intakeProcessed string
	resync          time.Duration
	workers         int
	maxSessions     int

	// Relay.
	requestTimeout    time.Duration
	p2Star            time.Duration
	leaseTTL          time.Duration
	failOnLeaseExpiry bool

	// Logging.
	logFormat string
	logLevel  string

	// Runtime.
	gcPercent gcpercent.Value

	// Demo.
	demo        bool
	demoTickets int

	adminConfig
	clusterConfig
}

// flagGroup orders the help output.
type flagGroup struct {
	name  string
	flags []string
}

var flagGroups = []flagGroup{
	{"Control plane", []string{"listen", "tls-cert", "tls-key", "client-ca", "insecure", "auth-tokens", "shutdown-grace"}},
	{"Admin", []string{"admin-listen"}},
	{"Store", []string{"data-dir", "etcd-endpoints", "replica", "store-lease-ttl"}},
	{"Cluster (several replicas on one etcd)", clusterFlags},
	{"openOBD", []string{"openobd-host", "openobd-port", "client-id", "client-secret", "cluster-id", "openobd-insecure", "openobd-ca"}},
	{"Partner API", []string{"partner-url", "ticket-write"}},
	{"Intake", []string{"intake-state", "intake-externally-processed", "resync-interval", "workers", "max-sessions"}},
	{"Relay", []string{"request-timeout", "p2-star", "lease-ttl", "fail-on-lease-expiry"}},
	{"Logging", []string{"log-format", "log-level"}},
	{"Runtime", []string{"gc-percent"}},
	{"Demo", []string{"demo", "demo-tickets"}},
}

// envNames maps a flag to its environment variables, first match wins.
var envNames = map[string][]string{
	"openobd-host":  {"OPENOBD_GRPC_HOST"},
	"openobd-port":  {"OPENOBD_GRPC_PORT"},
	"client-id":     {"OPENOBD_PARTNER_CLIENT_ID"},
	"client-secret": {"OPENOBD_PARTNER_CLIENT_SECRET"},
	"cluster-id":    {"OPENOBD_CLUSTER_ID"},
	"gc-percent":    {"GOGC"},
}

// envInlineTokens holds control-plane tokens inline ("token:role:name,..."),
// for platforms that pass secrets as environment variables; --auth-tokens
// (a file) wins when both are given.
const envInlineTokens = "ORCHESTRATOR_TOKENS"

func envName(flagName string) string {
	return "ORCHESTRATOR_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func defaultDataDir() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return dir + "/obdorch"
	}
	return "obdorch-data"
}

func (c *config) addFlags(fs *flag.FlagSet) {
	host, _ := os.Hostname()
	if host == "" {
		host = "replica"
	}
	fs.StringVar(&c.listen, "listen", "127.0.0.1:7600", "control-plane `address`; plaintext only on loopback unless --insecure")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "control-plane TLS certificate `file` (PEM)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "control-plane TLS key `file` (PEM)")
	fs.StringVar(&c.clientCA, "client-ca", "", "CA `file` (PEM) required of clients: enables mTLS")
	fs.BoolVar(&c.insecure, "insecure", false, "allow plaintext on a non-loopback address")
	fs.StringVar(&c.authTokens, "auth-tokens", "", "`file` of bearer tokens with roles (\"<token> <role> <name>\" per line); none: no authentication")
	fs.DurationVar(&c.shutdownFor, "shutdown-grace", 10*time.Second, "time given to open calls on shutdown")

	fs.StringVar(&c.dataDir, "data-dir", defaultDataDir(), "`directory` of the embedded etcd store (keep it private: it holds session tokens)")
	fs.StringVar(&c.etcdEndpoints, "etcd-endpoints", "", "comma-separated etcd `endpoints`; empty runs an embedded etcd in --data-dir")
	fs.StringVar(&c.replica, "replica", host, "this replica's unique `name` in the store")
	fs.DurationVar(&c.storeLeaseTTL, "store-lease-ttl", 10*time.Second, "how long this replica's claims outlive it in the store after a crash (whole seconds; other replicas adopt its sessions then)")

	fs.StringVar(&c.openobdHost, "openobd-host", "grpc.openobd.com", "openOBD gRPC `host`")
	fs.IntVar(&c.openobdPort, "openobd-port", 443, "openOBD gRPC `port`; also the port of session endpoints that name none")
	fs.StringVar(&c.clientID, "client-id", "", "Partner API client `id` (also used for openOBD)")
	fs.StringVar(&c.clientSecret, "client-secret", "", "Partner API client `secret`")
	fs.StringVar(&c.clusterID, "cluster-id", "001", "Jifeline `cluster`: 001 Europe, 002 USA")
	fs.BoolVar(&c.openobdInsecure, "openobd-insecure", false, "plaintext to openOBD's controller and session endpoints instead of TLS (development only: tokens travel in clear)")
	fs.StringVar(&c.openobdCA, "openobd-ca", "", "PEM `file` of the CA certificates that sign openOBD's servers (a private CA); default the system's roots")

	fs.StringVar(&c.partnerURL, "partner-url", "", "Partner API base `URL` (default: the cluster's, https://partner-api-<cluster>.prd.jifeline.cloud)")
	fs.BoolVar(&c.ticketWrite, "ticket-write", false, "mark finished tickets on the Partner API (external_reference, externally_processed); the endpoint is not publicly documented")

	fs.StringVar(&c.intakeState, "intake-state", string(partner.TicketPending), "ticket `state` to take in")
	fs.StringVar(&c.intakeProcessed, "intake-externally-processed", "false", "take in tickets whose externally_processed is `true|false|any`")
	fs.DurationVar(&c.resync, "resync-interval", 15*time.Second, "time between intake passes")
	fs.IntVar(&c.workers, "workers", 64, "concurrent reconciles")
	fs.IntVar(&c.maxSessions, "max-sessions", orchestrator.DefaultMaxSessions, "most live sessions this replica holds; below it, replicas sharing an etcd cluster each take about an even share")

	fs.DurationVar(&c.requestTimeout, "request-timeout", connector.DefaultResponseTimeout, "default UDS response timeout (P2), for requests that set none")
	fs.DurationVar(&c.p2Star, "p2-star", connector.DefaultP2Star, "UDS timeout after each response pending (P2*)")
	fs.DurationVar(&c.leaseTTL, "lease-ttl", 30*time.Second, "default runner lease")
	fs.BoolVar(&c.failOnLeaseExpiry, "fail-on-lease-expiry", false, "fail a session whose runner lease expires instead of returning it to READY")

	fs.StringVar(&c.logFormat, "log-format", "text", "log `format`: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log `level`: debug, info, warn, error")

	c.gcPercent = gcpercent.Default
	fs.Var(&c.gcPercent, "gc-percent", "garbage collector target in `percent` (GOGC), or off; the default trades heap for a shorter relay latency tail: the heap grows to (1 + percent/100) times its live size between collections (GOMEMLIMIT still caps it)")

	fs.BoolVar(&c.demo, "demo", false, "run against an in-process fake Jifeline with demo tickets, store in a temporary directory")
	fs.IntVar(&c.demoTickets, "demo-tickets", 3, "pending tickets in demo mode")
	c.addAdminFlags(fs)
	c.addClusterFlags(fs)
}

// parseConfig parses args over the environment and validates the result.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("orchestrator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.addFlags(fs)
	fs.Usage = func() { usage(fs, stderr) }
	// Environment first, then the command line overrides it.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		for _, name := range append(envNames[f.Name], envName(f.Name)) {
			if v := getenv(name); v != "" {
				if err := fs.Set(f.Name, v); err != nil && envErr == nil {
					envErr = fmt.Errorf("invalid %s=%q (flag --%s): %w", name, v, f.Name, err)
				}
				break
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, c.validate()
}

func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "Usage: orchestrator [flags]\n       orchestrator --version\n\nThe openOBD session orchestrator. Every flag has an environment twin, shown in brackets.\n")
	seen := map[string]bool{}
	for _, g := range flagGroups {
		fmt.Fprintf(w, "\n%s:\n", g.name)
		for _, name := range g.flags {
			seen[name] = true
			printFlag(w, fs.Lookup(name))
		}
	}
	var rest []string
	fs.VisitAll(func(f *flag.Flag) {
		if !seen[f.Name] {
			rest = append(rest, f.Name)
		}
	})
	sort.Strings(rest)
	if len(rest) > 0 {
		fmt.Fprintf(w, "\nOther:\n")
		for _, name := range rest {
			printFlag(w, fs.Lookup(name))
		}
	}
	fmt.Fprintf(w, "\nEnvironment only:\n  %s\n        control-plane tokens inline, \"token:role:name,...\" (--auth-tokens wins)\n", envInlineTokens)
	fmt.Fprintf(w, "  OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, OTEL_SDK_DISABLED\n        OpenTelemetry, as the standard defines them\n")
}

func printFlag(w io.Writer, f *flag.Flag) {
	arg, help := flag.UnquoteUsage(f)
	envs := append(append([]string{}, envNames[f.Name]...), envName(f.Name))
	fmt.Fprintf(w, "  --%s %s\n        %s", f.Name, arg, help)
	if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
		fmt.Fprintf(w, " (default %q)", f.DefValue)
	}
	fmt.Fprintf(w, " [%s]\n", strings.Join(envs, ", "))
}

// validate checks the configuration before anything starts; every error
// names the flag.
func (c *config) validate() error {
	var errs []error
	bad := func(flagName, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flagName, fmt.Sprintf(format, args...)))
	}
	host, _, err := net.SplitHostPort(c.listen)
	if err != nil {
		bad("listen", "%v", err)
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		bad("tls-cert", "--tls-cert and --tls-key go together")
	}
	if c.clientCA != "" && c.tlsCert == "" {
		bad("client-ca", "mTLS needs --tls-cert and --tls-key")
	}
	if err == nil && c.tlsCert == "" && !c.insecure && !isLoopback(host) {
		bad("listen", "plaintext on non-loopback address %q: give --tls-cert/--tls-key or --insecure", c.listen)
	}
	for _, f := range []struct {
		name string
		path string
	}{{"tls-cert", c.tlsCert}, {"tls-key", c.tlsKey}, {"client-ca", c.clientCA}, {"auth-tokens", c.authTokens}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				bad(f.name, "%v", err)
			}
		}
	}
	if err := c.validateAdmin(); err != nil {
		errs = append(errs, err)
	}
	if err := c.validateCluster(); err != nil {
		errs = append(errs, err)
	}
	if c.shutdownFor <= 0 {
		bad("shutdown-grace", "must be positive")
	}
	if c.replica == "" || strings.ContainsAny(c.replica, "/ ") {
		bad("replica", "must be a non-empty name without '/' or spaces")
	}
	if c.etcdEndpoints == "" && c.dataDir == "" && !c.demo {
		bad("data-dir", "required for the embedded store (or give --etcd-endpoints)")
	}
	if !c.demo {
		if c.clientID == "" {
			bad("client-id", "required outside --demo (or OPENOBD_PARTNER_CLIENT_ID)")
		}
		if c.clientSecret == "" {
			bad("client-secret", "required outside --demo (or OPENOBD_PARTNER_CLIENT_SECRET)")
		}
	}
	if c.openobdHost == "" {
		bad("openobd-host", "required")
	}
	if c.openobdCA != "" {
		if c.openobdInsecure {
			bad("openobd-ca", "cannot be used with --openobd-insecure (no TLS to verify)")
		} else if _, err := loadCertPool(c.openobdCA); err != nil {
			bad("openobd-ca", "%v", err)
		}
	}
	if c.openobdPort < 1 || c.openobdPort > 65535 {
		bad("openobd-port", "must be 1-65535, got %d", c.openobdPort)
	}
	if c.clusterID != "001" && c.clusterID != "002" {
		bad("cluster-id", "must be 001 (Europe) or 002 (USA), got %q", c.clusterID)
	}
	if c.partnerURL != "" && !strings.HasPrefix(c.partnerURL, "https://") && !strings.HasPrefix(c.partnerURL, "http://") {
		bad("partner-url", "must be an http(s) URL, got %q", c.partnerURL)
	}
	if _, err := partner.ParseTicketState(c.intakeState); err != nil {
		bad("intake-state", "%v", err)
	}
	switch c.intakeProcessed {
	case "true", "false", "any":
	default:
		bad("intake-externally-processed", "must be true, false or any, got %q", c.intakeProcessed)
	}
	if c.resync < time.Second {
		bad("resync-interval", "must be at least 1s, got %s", c.resync)
	}
	if c.workers < 1 || c.workers > 4096 {
		bad("workers", "must be 1-4096, got %d", c.workers)
	}
	if c.maxSessions < 1 {
		bad("max-sessions", "must be at least 1, got %d", c.maxSessions)
	}
	if c.requestTimeout <= 0 || c.requestTimeout > 2*time.Minute {
		bad("request-timeout", "must be in (0, 2m], got %s", c.requestTimeout)
	}
	if c.p2Star <= 0 || c.p2Star > 2*time.Minute {
		bad("p2-star", "must be in (0, 2m], got %s", c.p2Star)
	}
	if c.storeLeaseTTL < 2*time.Second || c.storeLeaseTTL > 5*time.Minute || c.storeLeaseTTL%time.Second != 0 {
		bad("store-lease-ttl", "must be whole seconds between 2s and 5m, got %s", c.storeLeaseTTL)
	}
	if c.leaseTTL < 5*time.Second || c.leaseTTL > 10*time.Minute {
		bad("lease-ttl", "must be between 5s and 10m, got %s", c.leaseTTL)
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		bad("log-format", "must be text or json, got %q", c.logFormat)
	}
	if _, err := parseLevel(c.logLevel); err != nil {
		bad("log-level", "%v", err)
	}
	if c.demoTickets < 0 || c.demoTickets > 10000 {
		bad("demo-tickets", "must be 0-10000, got %d", c.demoTickets)
	}
	return errors.Join(errs...)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("unknown level %q", s)
	}
	return l, nil
}

func (c *config) intakeProcessedFilter() (processed, any bool) {
	if c.intakeProcessed == "any" {
		return false, true
	}
	b, _ := strconv.ParseBool(c.intakeProcessed)
	return b, false
}

// loadCertPool reads a pool of PEM certificates from path; it fails when the
// file holds none.
func loadCertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate in %s", path)
	}
	return pool, nil
}
