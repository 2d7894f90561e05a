package sdk

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
)

// Client is a runner's connection to the orchestrator's control plane. It is
// safe for concurrent use; one Client serves any number of sessions.
type Client struct {
	conn   *grpc.ClientConn // nil when the caller owns the connection
	cc     grpc.ClientConnInterface
	api    orchestratorv1.OrchestratorServiceClient
	runner string
}

// Option configures Dial.
type Option func(*dialConfig)

type dialConfig struct {
	creds    credentials.TransportCredentials
	token    string
	runner   string
	dialOpts []grpc.DialOption
}

// WithInsecure connects in plaintext. The orchestrator serves plaintext only
// on loopback unless its operator allows more.
func WithInsecure() Option {
	return func(c *dialConfig) { c.creds = insecure.NewCredentials() }
}

// WithTLS connects over TLS with cfg (nil: the system's roots).
func WithTLS(cfg *tls.Config) Option {
	return func(c *dialConfig) { c.creds = credentials.NewTLS(cfg) }
}

// WithBearerToken sends token on every call ("authorization: Bearer
// <token>"), as the orchestrator's --auth-tokens requires; runners need a
// token of role runner.
func WithBearerToken(token string) Option {
	return func(c *dialConfig) { c.token = token }
}

// WithRunnerName sets the name recorded in the history of every session the
// runner acquires; default "sdk-runner".
func WithRunnerName(name string) Option {
	return func(c *dialConfig) { c.runner = name }
}

// WithDialOptions adds gRPC dial options (interceptors, keepalive...).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *dialConfig) { c.dialOpts = append(c.dialOpts, opts...) }
}

// Dial connects to the control plane at target (host:port, or any gRPC
// target). Exactly one of WithInsecure and WithTLS is required. The
// connection is made lazily, by the first call.
func Dial(target string, opts ...Option) (*Client, error) {
	var cfg dialConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.creds == nil {
		return nil, errors.New("sdk: Dial needs WithTLS or WithInsecure")
	}
	if target == "" {
		return nil, errors.New("sdk: Dial needs a target (host:port)")
	}
	dialOpts := append([]grpc.DialOption{grpc.WithTransportCredentials(cfg.creds)}, cfg.dialOpts...)
	if cfg.token != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearer{token: cfg.token}))
	}
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("sdk: dial %s: %w", target, err)
	}
	c := New(conn, WithRunnerName(cfg.runner))
	c.conn = conn
	return c, nil
}

// New returns a Client on a connection the caller owns (Close leaves it
// open). Of the options only WithRunnerName applies.
func New(conn grpc.ClientConnInterface, opts ...Option) *Client {
	var cfg dialConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.runner == "" {
		cfg.runner = "sdk-runner"
	}
	return &Client{cc: conn, api: orchestratorv1.NewOrchestratorServiceClient(conn), runner: cfg.runner}
}

// Conn returns the client's connection.
func (c *Client) Conn() grpc.ClientConnInterface { return c.cc }

// API returns the generated control-plane client, for the calls the SDK
// does not wrap (ListSessions, WatchSessions...).
func (c *Client) API() orchestratorv1.OrchestratorServiceClient { return c.api }

// Close closes the connection Dial made. Sessions of this client must be
// finished or released first.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// bearer is the per-call credential of WithBearerToken.
type bearer struct{ token string }

// GetRequestMetadata adds the authorization header to every call.
func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity is false so that a token can be used on the
// orchestrator's loopback plaintext listener too.
func (b bearer) RequireTransportSecurity() bool { return false }

// AcquireOptions selects the session to acquire and its lease. Zero fields
// take the defaults.
type AcquireOptions struct {
	// Only a session of this ticket (UUID or number).
	TicketID string
	// Only a session on this connector (UUID).
	ConnectorID string
	// Only a session on this vehicle.
	VIN string
	// LeaseTTL is the lease's time to live, 5 s to 10 min; default 30 s.
	LeaseTTL time.Duration
	// RenewEvery is how often the lease is renewed in the background;
	// default a third of LeaseTTL.
	RenewEvery time.Duration
}

// DefaultLeaseTTL is the lease time to live when AcquireOptions.LeaseTTL is
// zero.
const DefaultLeaseTTL = 30 * time.Second

// Acquire waits until a READY session matches opts and leases it. It waits
// as long as ctx allows: give ctx a deadline to bound the wait (the
// orchestrator answers DEADLINE_EXCEEDED when nothing matched). The returned
// session renews its lease in the background until Finish or Release;
// Lost reports a loss.
func (c *Client) Acquire(ctx context.Context, opts AcquireOptions) (*Session, error) {
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.LeaseTTL < 0 || opts.RenewEvery < 0 {
		return nil, errors.New("sdk: AcquireOptions.LeaseTTL and RenewEvery must not be negative")
	}
	if opts.RenewEvery == 0 {
		opts.RenewEvery = opts.LeaseTTL / 3
	}
	resp, err := c.api.AcquireSession(ctx, &orchestratorv1.AcquireSessionRequest{
		TicketId:    opts.TicketID,
		ConnectorId: opts.ConnectorID,
		Vin:         opts.VIN,
		Runner:      c.runner,
		LeaseTtl:    durationpb.New(opts.LeaseTTL),
	})
	if err != nil {
		return nil, fmt.Errorf("sdk: acquire: %w", err)
	}
	return newSession(c, resp, opts, ctx), nil
}
