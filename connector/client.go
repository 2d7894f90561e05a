package connector

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/obdorch/obdorch/connector/internal/pushstream"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

// Session states as openOBD reports them in SessionInfo.State.
const (
	StateAvailable   = "available"   // started, waiting for authenticate
	StateActive      = "active"      // authenticated; calls are allowed
	StateInterrupted = "interrupted" // stopped by interruptSession or the Partner API
	StateFinished    = "finished"    // ended by finish
	StateFailed      = "failed"      // stopped by an internal error
)

// SessionInfo describes an openOBD session as the session controller
// returns it. Its String and LogValue methods leave out the
// AuthenticationToken.
type SessionInfo struct {
	ID    string
	State string
	// CreatedAt is the server's ISO-8601 text, kept as sent (its exact
	// layout varies).
	CreatedAt string
	// GRPCEndpoint is the host (or host:port) that serves the session.
	GRPCEndpoint string
	// AuthenticationToken claims the session once, through Client.Attach.
	AuthenticationToken string
}

// String describes the session without its authentication token.
func (i SessionInfo) String() string {
	return fmt.Sprintf("session %s (state %s, endpoint %s, created %s)", i.ID, i.State, i.GRPCEndpoint, i.CreatedAt)
}

// GoString is String, so that %#v does not print the token either.
func (i SessionInfo) GoString() string { return i.String() }

// LogValue implements slog.LogValuer without the authentication token.
func (i SessionInfo) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", i.ID),
		slog.String("state", i.State),
		slog.String("endpoint", i.GRPCEndpoint),
	)
}

// Ended reports whether the state is final (interrupted, finished, failed).
func (i SessionInfo) Ended() bool {
	return i.State == StateInterrupted || i.State == StateFinished || i.State == StateFailed
}

func sessionInfoFromProto(p *openobdv1.SessionInfo) SessionInfo {
	return SessionInfo{
		ID:                  p.GetId(),
		State:               p.GetState(),
		CreatedAt:           p.GetCreatedAt(),
		GRPCEndpoint:        p.GetGrpcEndpoint(),
		AuthenticationToken: p.GetAuthenticationToken(),
	}
}

// Client talks to the openOBD session controller and attaches to sessions.
// It keeps one gRPC connection per endpoint and is safe for concurrent use.
type Client struct {
	cfg        Config
	log        *slog.Logger
	controller openobdv1.SessionControllerClient
	tokens     *tokenCache

	mu       sync.Mutex
	closed   bool
	conns    map[string]*grpc.ClientConn // by host:port
	pushes   map[string]*pushstream.Pool // token streams, by host:port
	sessions map[*Session]struct{}
}

// New returns a Client for cfg after filling defaults and validating it. It
// does not connect: connections are made by the first call.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{
		cfg:      cfg,
		log:      cfg.Logger,
		conns:    make(map[string]*grpc.ClientConn),
		pushes:   make(map[string]*pushstream.Pool),
		sessions: make(map[*Session]struct{}),
	}
	cc, err := c.conn(net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, err
	}
	c.controller = openobdv1.NewSessionControllerClient(cc)
	c.tokens = &tokenCache{
		fetch:    c.fetchControllerToken,
		now:      cfg.Now,
		lifetime: cfg.TokenLifetime - cfg.TokenRefreshMargin,
	}
	return c, nil
}

// Close closes every session still attached, then every connection. The
// sessions are not finished or interrupted on the server.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	sessions := make([]*Session, 0, len(c.sessions))
	for s := range c.sessions {
		sessions = append(sessions, s)
	}
	conns, pushes := c.conns, c.pushes
	c.conns, c.pushes = nil, nil
	c.mu.Unlock()

	for _, s := range sessions {
		s.Close()
	}
	for _, p := range pushes {
		p.Close()
	}
	var errs []error
	for addr, cc := range conns {
		if err := cc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("connector: closing connection to %s: %w", addr, err))
		}
	}
	return errors.Join(errs...)
}

// conn returns the shared connection to endpoint ("host:port", or "host"
// on the configured port), creating it on first use.
func (c *Client) conn(endpoint string) (*grpc.ClientConn, error) {
	cc, _, err := c.endpoint(endpoint)
	return cc, err
}

// endpoint returns the shared gRPC connection to endpoint and the pool its
// sessions' token streams use, creating them on first use.
func (c *Client) endpoint(endpoint string) (*grpc.ClientConn, *pushstream.Pool, error) {
	addr, err := splitEndpoint(endpoint, c.cfg.Port)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, nil, ErrClosed
	}
	if cc, ok := c.conns[addr]; ok {
		return cc, c.pushes[addr], nil
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(c.transportCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
		// Detect a dead connection under a long stream. Five minutes is the
		// least grpc servers accept by default; the openOBD policy is not
		// published.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
		// Static flow-control windows: ISO-TP messages are small, and the
		// dynamic window's bandwidth probe sends a ping for nearly every
		// answer of a request/response exchange.
		grpc.WithStaticStreamWindowSize(staticStreamWindow), grpc.WithStaticConnWindowSize(staticConnWindow),
	}
	if c.cfg.Dialer != nil {
		opts = append(opts, grpc.WithContextDialer(c.cfg.Dialer))
	}
	// No service-config retries: openOBD's UNAVAILABLE answers ("Resource
	// already in use", "no free resources ... two minutes") need the
	// caller's backoff, not an immediate replay.
	cc, err := grpc.NewClient(addr, append(opts, c.cfg.DialOptions...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("connector: connection to %s: %w", addr, err)
	}
	// The session-token streams stay open for as long as their sessions,
	// silent for two minutes between tokens: they go over connections of
	// their own, where an open stream costs no goroutine (see pushstream).
	push := pushstream.NewPool(addr, pushstream.Options{
		Credentials:      c.transportCredentials(),
		Dial:             c.cfg.Dialer,
		KeepaliveTime:    keepaliveTime,
		KeepaliveTimeout: keepaliveTimeout,
		UserAgent:        "obdorch-connector (token streams)",
	})
	c.conns[addr], c.pushes[addr] = cc, push
	return cc, push, nil
}

// Keepalive of the openOBD connections.
const (
	keepaliveTime    = 5 * time.Minute
	keepaliveTimeout = 20 * time.Second
)

// transportCredentials is TLS (1.2 or later, verified against RootCAs or
// the system's roots) for every connection, whatever its port, unless the
// operator turned it off with Insecure. The endpoint comes from the server;
// whether a session token travels in clear is the operator's decision only.
func (c *Client) transportCredentials() credentials.TransportCredentials {
	if c.cfg.Insecure {
		return insecure.NewCredentials()
	}
	return credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.cfg.RootCAs})
}

// splitEndpoint returns endpoint as host:port, adding defaultPort when
// endpoint names no port.
func splitEndpoint(endpoint string, defaultPort int) (string, error) {
	if endpoint == "" {
		return "", errors.New("connector: empty endpoint")
	}
	host, p, err := net.SplitHostPort(endpoint)
	if err != nil { // no port
		host, p = strings.TrimSuffix(strings.TrimPrefix(endpoint, "["), "]"), strconv.Itoa(defaultPort)
	}
	if host == "" {
		return "", fmt.Errorf("connector: endpoint %q: no host", endpoint)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", fmt.Errorf("connector: endpoint %q: invalid port", endpoint)
	}
	return net.JoinHostPort(host, p), nil
}

// withBearer returns ctx carrying "authorization: Bearer <token>".
func withBearer(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// fetchControllerToken calls getSessionControllerToken (the only call
// without a token).
func (c *Client) fetchControllerToken(ctx context.Context) (string, error) {
	const op = "getSessionControllerToken"
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	tok, err := c.controller.GetSessionControllerToken(ctx, &openobdv1.Authenticate{
		ClientId:     c.cfg.ClientID,
		ClientSecret: c.cfg.ClientSecret,
		ClusterId:    c.cfg.ClusterID,
	})
	if err != nil {
		return "", classify(ctx, op, err, c.cfg.ClientSecret)
	}
	if tok.GetValue() == "" {
		return "", &Error{Kind: KindRetryable, Op: op, Message: "empty token"}
	}
	c.log.Debug("session controller token fetched", slog.String("cluster_id", c.cfg.ClusterID))
	return tok.GetValue(), nil
}

// callController runs a session-controller call with the cached token and
// a deadline. On UNAUTHENTICATED it fetches a new token once and retries
// the call once.
func callController[T any](ctx context.Context, c *Client, op string, call func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	for attempt := 0; ; attempt++ {
		token, err := c.tokens.get(ctx)
		if err != nil {
			return zero, err
		}
		cctx, cancel := context.WithTimeout(withBearer(ctx, token), c.cfg.CallTimeout)
		resp, err := call(cctx)
		cancel()
		if err == nil {
			return resp, nil
		}
		if status.Code(err) == codes.Unauthenticated && attempt == 0 && ctx.Err() == nil {
			c.log.Info("session controller token rejected, fetching a new one", slog.String("op", op))
			c.tokens.invalidate(token)
			continue
		}
		return zero, classify(ctx, op, err, token, c.cfg.ClientSecret)
	}
}

// StartSessionOnTicket starts a session on a ticket, given by number
// ("7848095") or UUID. The returned session is "available": claim it with
// Attach.
func (c *Client) StartSessionOnTicket(ctx context.Context, ticket string) (SessionInfo, error) {
	info, err := callController(ctx, c, "startSessionOnTicket", func(ctx context.Context) (*openobdv1.SessionInfo, error) {
		return c.controller.StartSessionOnTicket(ctx, &openobdv1.TicketId{Value: ticket})
	})
	if err != nil {
		return SessionInfo{}, err
	}
	c.log.Info("session started", slog.String("ticket", ticket), slog.Any("session", sessionInfoFromProto(info)))
	return sessionInfoFromProto(info), nil
}

// StartSessionOnConnector starts a session on a connector (number or UUID)
// that has no ticket. openOBD meant this for development: it is not billed.
func (c *Client) StartSessionOnConnector(ctx context.Context, connector string) (SessionInfo, error) {
	info, err := callController(ctx, c, "startSessionOnConnector", func(ctx context.Context) (*openobdv1.SessionInfo, error) {
		return c.controller.StartSessionOnConnector(ctx, &openobdv1.ConnectorId{Value: connector})
	})
	if err != nil {
		return SessionInfo{}, err
	}
	c.log.Info("session started", slog.String("connector", connector), slog.Any("session", sessionInfoFromProto(info)))
	return sessionInfoFromProto(info), nil
}

// GetSession returns a session in any state.
func (c *Client) GetSession(ctx context.Context, id string) (SessionInfo, error) {
	info, err := callController(ctx, c, "getSession", func(ctx context.Context) (*openobdv1.SessionInfo, error) {
		return c.controller.GetSession(ctx, &openobdv1.SessionId{Value: id})
	})
	if err != nil {
		return SessionInfo{}, err
	}
	return sessionInfoFromProto(info), nil
}

// ListSessions returns the client's (recent) sessions in any state.
func (c *Client) ListSessions(ctx context.Context) ([]SessionInfo, error) {
	list, err := callController(ctx, c, "getSessionList", func(ctx context.Context) (*openobdv1.SessionInfoList, error) {
		return c.controller.GetSessionList(ctx, &openobdv1.EmptyMessage{})
	})
	if err != nil {
		return nil, err
	}
	out := make([]SessionInfo, len(list.GetSessions()))
	for i, s := range list.GetSessions() {
		out[i] = sessionInfoFromProto(s)
	}
	return out, nil
}

// InterruptSession stops an available or active session and returns it in
// its new state. For a session that is already over it returns a
// KindInterrupted error with the session's state (see EndState).
func (c *Client) InterruptSession(ctx context.Context, id string) (SessionInfo, error) {
	const op = "interruptSession"
	info, err := callController(ctx, c, op, func(ctx context.Context) (*openobdv1.SessionInfo, error) {
		return c.controller.InterruptSession(ctx, &openobdv1.SessionId{Value: id})
	})
	if err != nil {
		// A refusal may mean the session is already over: ask, rather than
		// read it from the text.
		if k := KindOf(err); (k == KindTerminal || k == KindRetryable) && ctx.Err() == nil {
			if cur, gerr := c.GetSession(ctx, id); gerr == nil && cur.Ended() {
				return SessionInfo{}, &Error{Kind: KindInterrupted, Op: op, Message: "session state is " + cur.State, State: cur.State}
			}
		}
		return SessionInfo{}, err
	}
	c.log.Info("session interrupted", slog.Any("session", sessionInfoFromProto(info)))
	return sessionInfoFromProto(info), nil
}

// tokenCache holds the session-controller token. Concurrent callers share
// one fetch; a caller that gives up waiting does not cancel it for others.
type tokenCache struct {
	fetch    func(context.Context) (string, error)
	now      func() time.Time
	lifetime time.Duration // how long a token is used before it is fetched again

	mu        sync.Mutex
	value     string
	refreshAt time.Time
	inflight  *tokenFetch
}

// tokenFetch is one call of fetch, shared by the callers that wait for it.
type tokenFetch struct {
	done  chan struct{}
	value string
	err   error
}

// get returns a valid token, fetching one if needed.
func (t *tokenCache) get(ctx context.Context) (string, error) {
	for {
		t.mu.Lock()
		if t.value != "" && t.now().Before(t.refreshAt) {
			v := t.value
			t.mu.Unlock()
			return v, nil
		}
		if f := t.inflight; f != nil {
			t.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return "", ctx.Err()
			}
			if f.err == nil {
				return f.value, nil
			}
			if isContextError(f.err) && ctx.Err() == nil {
				continue // the fetching caller gave up; fetch for ourselves
			}
			return "", f.err
		}
		f := &tokenFetch{done: make(chan struct{})}
		t.inflight = f
		t.mu.Unlock()

		f.value, f.err = t.fetch(ctx)

		t.mu.Lock()
		t.inflight = nil
		if f.err == nil {
			t.value, t.refreshAt = f.value, t.now().Add(t.lifetime)
		}
		t.mu.Unlock()
		close(f.done)
		return f.value, f.err
	}
}

// invalidate forgets token if it is still the cached one, so that the next
// get fetches a new one.
func (t *tokenCache) invalidate(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.value == token {
		t.value = ""
	}
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
