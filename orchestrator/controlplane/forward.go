package controlplane

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/session"
)

// Forwarding: several replicas share one store, and a call that needs the
// live openOBD session (ConfigureBus, Send, Exchange, FinishSession,
// InterruptSession, a lease renewal) can only be served by the replica that
// holds it. When the core answers such a call with a NotOwnerError that
// carries the owner's address, the service calls the owner with the same
// request, the caller's deadline and the caller's identity, and returns the
// owner's answer. AcquireSession leases a READY session held by any replica
// (Service.AcquireSession).
//
// Replicas authenticate each other with the replica token (role replica);
// only a caller of that role may name another caller in
// x-obdorch-forwarded-for. A forwarded call is served where it lands and
// never forwarded again. The owner marks its answers with
// x-obdorch-served-by, so a failure to reach it is told apart from its own
// answer: the caller then gets UNAVAILABLE naming the owner.
const (
	// ForwardedForHeader names the caller a replica forwards a call for.
	ForwardedForHeader = "x-obdorch-forwarded-for"
	// ServedByHeader (a trailer) names the replica that served a forwarded
	// call.
	ServedByHeader = "x-obdorch-served-by"
	// AcquireSessionHeader names, on an AcquireSession forwarded to a
	// session's owner, the session the forwarding replica saw READY. The
	// owner checks that session's stored state: its own cache may not show
	// the write yet.
	AcquireSessionHeader = "x-obdorch-acquire-session"
)

// Registry resolves a replica name to its advertised control-plane
// address; *store.Store satisfies it.
type Registry interface {
	ReplicaAddress(ctx context.Context, name string) (address string, ok bool, err error)
}

// ForwardOptions configure a Forwarder.
type ForwardOptions struct {
	// Replica is this replica's name. Required.
	Replica string
	// Token is the replica token, presented to the other replicas and
	// accepted from them. Required: at least 16 printable ASCII characters.
	Token string
	// TLS, when set, secures the connections to the other replicas (their
	// control planes serve TLS); nil dials plaintext.
	TLS *tls.Config
	// Registry resolves the owners of sessions another replica holds, for
	// AcquireSession. Required.
	Registry Registry
	// DialOptions are added to every connection to another replica
	// (tests: a dialer).
	DialOptions []grpc.DialOption
	// Logger receives the forwarder's logs; default discards.
	Logger *slog.Logger
}

// Forwarder calls other replicas on behalf of this one's callers. It keeps
// one client connection per replica address, made on first use and shared
// by every call to that address. Close it after the server has stopped.
type Forwarder struct {
	opts  ForwardOptions
	creds credentials.TransportCredentials

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

// NewForwarder checks opts and returns a Forwarder.
func NewForwarder(opts ForwardOptions) (*Forwarder, error) {
	var errs []error
	if opts.Replica == "" {
		errs = append(errs, errors.New("controlplane: ForwardOptions.Replica: required"))
	}
	if err := NewTokens().AddReplicaToken(opts.Token); err != nil {
		errs = append(errs, fmt.Errorf("controlplane: ForwardOptions.Token: %w", err))
	}
	if opts.Registry == nil {
		errs = append(errs, errors.New("controlplane: ForwardOptions.Registry: required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Forwarder{opts: opts, conns: map[string]*grpc.ClientConn{}, creds: insecure.NewCredentials()}
	if opts.TLS != nil {
		f.creds = credentials.NewTLS(opts.TLS)
	}
	return f, nil
}

// Close closes the connections to the other replicas.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	var errs []error
	for addr, c := range f.conns {
		errs = append(errs, c.Close())
		delete(f.conns, addr)
	}
	return errors.Join(errs...)
}

// client returns the shared client of the replica at addr.
func (f *Forwarder) client(addr string) (orchestratorv1.OrchestratorServiceClient, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, errors.New("forwarder closed")
	}
	c, ok := f.conns[addr]
	if !ok {
		opts := append([]grpc.DialOption{
			grpc.WithTransportCredentials(f.creds),
			grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
			// As on the server: no bandwidth-probe pings on busy streams.
			grpc.WithStaticStreamWindowSize(64 << 10), grpc.WithStaticConnWindowSize(1 << 20),
		}, f.opts.DialOptions...)
		var err error
		if c, err = grpc.NewClient(addr, opts...); err != nil {
			return nil, err
		}
		f.conns[addr] = c
	}
	return orchestratorv1.NewOrchestratorServiceClient(c), nil
}

// outgoing returns the context of a forwarded call: the caller's deadline
// and cancellation, the replica token and the caller's name.
func (f *Forwarder) outgoing(ctx context.Context) context.Context {
	return metadata.NewOutgoingContext(ctx, metadata.Pairs(
		"authorization", "Bearer "+f.opts.Token,
		ForwardedForHeader, callerName(ctx),
	))
}

// answer turns the error of a forwarded call into the caller's answer. An
// error the owner answered (it set ServedByHeader) is passed on as it is;
// any other failure, other than the caller's own cancellation or deadline,
// means the owner could not be reached or refused this replica: UNAVAILABLE
// naming the owner.
func (f *Forwarder) answer(ctx context.Context, owner *orchestrator.NotOwnerError, err error, trailer metadata.MD) error {
	if len(trailer.Get(ServedByHeader)) > 0 {
		return err
	}
	if ctx.Err() != nil {
		return toStatus(context.Cause(ctx))
	}
	f.opts.Logger.WarnContext(ctx, "forwarding to the owner failed", "session_id", owner.SessionID, "owner", owner.Owner, "address", owner.Address, "err", err)
	return toStatus(&unreachableError{owner: owner, err: err})
}

// unreachableError says the owner of a session could not be reached.
type unreachableError struct {
	owner *orchestrator.NotOwnerError
	err   error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("session %s is owned by replica %q at %s, which could not be reached: %s",
		e.owner.SessionID, e.owner.Owner, e.owner.Address, status.Convert(e.err).Message())
}

// Unwrap makes it a NotOwnerError (UNAVAILABLE with the owner's detail).
func (e *unreachableError) Unwrap() error { return e.owner }

// ownerOf returns the owner to forward a failed call to: when the service
// forwards, the call was not itself forwarded (a forwarded call is never
// forwarded again) and err names an owner with an address.
func (s *Service) ownerOf(ctx context.Context, err error) (*orchestrator.NotOwnerError, bool) {
	var no *orchestrator.NotOwnerError
	if s.opts.Forwarder == nil || isForwarded(ctx) || !errors.As(err, &no) || no.Address == "" {
		return nil, false
	}
	return no, true
}

// forwardUnary calls the owner of a session with call.
func forwardUnary[Resp any](ctx context.Context, f *Forwarder, owner *orchestrator.NotOwnerError,
	call func(ctx context.Context, c orchestratorv1.OrchestratorServiceClient, opts ...grpc.CallOption) (Resp, error),
) (Resp, error) {
	var zero Resp
	c, err := f.client(owner.Address)
	if err != nil {
		return zero, f.answer(ctx, owner, err, nil)
	}
	var trailer metadata.MD
	resp, err := call(f.outgoing(ctx), c, grpc.Trailer(&trailer))
	if err != nil {
		return zero, f.answer(ctx, owner, err, trailer)
	}
	return resp, nil
}

type forwardedKey struct{}

// isForwarded reports whether the call was forwarded by another replica.
func isForwarded(ctx context.Context) bool {
	v, _ := ctx.Value(forwardedKey{}).(bool)
	return v
}

// forwardedAcquireSession returns the session named by AcquireSessionHeader
// on a forwarded call, or "" (any matching session).
func forwardedAcquireSession(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, AcquireSessionHeader); len(v) == 1 {
		return v[0]
	}
	return ""
}

// ForwardInterceptors accept calls forwarded by other replicas. A call
// naming a caller in x-obdorch-forwarded-for must come from a replica: a
// principal of role replica (with AuthInterceptors installed before these)
// or, without authentication, a call presenting the replica token. Anyone
// else is refused with PERMISSION_DENIED. An accepted call is served as the
// named caller (the actor of what it does), is marked so it is never
// forwarded again, and its answer carries x-obdorch-served-by.
//
// Install them after the auth interceptors, in ServerOptions.Unary and
// ServerOptions.Stream.
func (f *Forwarder) ForwardInterceptors() (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	unary := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, fwd, err := f.acceptForwarded(ctx)
		if err != nil {
			return nil, err
		}
		if fwd {
			_ = grpc.SetTrailer(ctx, metadata.Pairs(ServedByHeader, f.opts.Replica))
		}
		return handler(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, fwd, err := f.acceptForwarded(ss.Context())
		if err != nil {
			return err
		}
		if !fwd {
			return handler(srv, ss)
		}
		ss.SetTrailer(metadata.Pairs(ServedByHeader, f.opts.Replica))
		return handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
	}
	return unary, stream
}

// acceptForwarded checks a forwarded caller's identity; fwd reports a
// forwarded call.
func (f *Forwarder) acceptForwarded(ctx context.Context) (_ context.Context, fwd bool, _ error) {
	md, _ := metadata.FromIncomingContext(ctx)
	names := md.Get(ForwardedForHeader)
	if len(names) == 0 {
		return ctx, false, nil
	}
	if !f.fromReplica(ctx) {
		return nil, false, status.Errorf(codes.PermissionDenied, "only a replica may set %s", ForwardedForHeader)
	}
	if len(names) != 1 || names[0] == "" || len(names[0]) > maxIDLen+len("control-plane@") {
		return nil, false, status.Errorf(codes.InvalidArgument, "%s: want one caller name", ForwardedForHeader)
	}
	ctx = context.WithValue(ctx, forwardedKey{}, true)
	return WithCaller(ctx, names[0]), true, nil
}

// fromReplica reports whether the caller is a replica.
func (f *Forwarder) fromReplica(ctx context.Context) bool {
	if p, ok := PrincipalFrom(ctx); ok {
		return p.Role == RoleReplica
	}
	token, err := auth.AuthFromMD(ctx, "bearer")
	return err == nil && subtle.ConstantTimeCompare([]byte(token), []byte(f.opts.Token)) == 1
}

// contextStream is a server stream with a context of its own.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

// ClusterCore is what AcquireSession needs of the core to lease sessions
// other replicas hold; *orchestrator.Orchestrator satisfies it. A Core
// used with a Forwarder must implement it.
type ClusterCore interface {
	ReadyElsewhere(req orchestrator.AcquireRequest) ([]*session.Record, <-chan struct{})
}

// acquireAnywhere leases a READY session that matches, held by this
// replica or any other. It tries this replica first, then the owners of
// the matching READY sessions its watch-fed cache shows, and otherwise
// waits for the next change the cache reports: no polling.
func (s *Service) acquireAnywhere(ctx context.Context, acq orchestrator.AcquireRequest, req *orchestratorv1.AcquireSessionRequest) (*orchestratorv1.AcquireSessionResponse, error) {
	cc, ok := s.core.(ClusterCore)
	if !ok {
		return nil, status.Error(codes.Internal, "the core cannot list sessions held by other replicas")
	}
	ctx, cancel := context.WithTimeoutCause(ctx, s.opts.AcquireMaxWait, errAcquireWait)
	defer cancel()
	acq.NoWait = true
	for {
		elsewhere, changed := cc.ReadyElsewhere(acq)
		got, err := s.core.AcquireSession(ctx, acq)
		if err == nil {
			return acquiredToProto(got), nil
		}
		if !errors.Is(err, orchestrator.ErrNoSession) {
			return nil, toStatus(err)
		}
		for _, rec := range elsewhere {
			if resp, ok := s.acquireFrom(ctx, rec, req); ok {
				return resp, nil
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), errAcquireWait) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, toStatus(fmt.Errorf("%w on any replica within %s", orchestrator.ErrNoSession, acquireWaited(ctx)))
			}
			return nil, toStatus(context.Cause(ctx))
		case <-s.drain.Done():
			return nil, status.Error(codes.Unavailable, errDraining.Error())
		case <-changed:
		}
	}
}

var errAcquireWait = errors.New("AcquireSession waited its longest")

func acquireWaited(ctx context.Context) string {
	if errors.Is(context.Cause(ctx), errAcquireWait) {
		return "the server's limit on waiting"
	}
	return "the caller's deadline"
}

// acquireFrom asks the owner of rec for a matching session; ok is false
// when it had none by then (another runner was quicker) or could not be
// reached, and the caller looks further.
func (s *Service) acquireFrom(ctx context.Context, rec *session.Record, req *orchestratorv1.AcquireSessionRequest) (*orchestratorv1.AcquireSessionResponse, bool) {
	f := s.opts.Forwarder
	addr, found, err := f.opts.Registry.ReplicaAddress(ctx, rec.Owner)
	if err != nil || !found {
		return nil, false // the owner is gone or the registry unreadable: the cache will change
	}
	owner := &orchestrator.NotOwnerError{SessionID: rec.ID, Owner: rec.Owner, Address: addr}
	resp, err := forwardUnary(ctx, f, owner, func(ctx context.Context, c orchestratorv1.OrchestratorServiceClient, opts ...grpc.CallOption) (*orchestratorv1.AcquireSessionResponse, error) {
		return c.AcquireSession(metadata.AppendToOutgoingContext(ctx, AcquireSessionHeader, rec.ID), req, opts...)
	})
	if err != nil {
		f.opts.Logger.DebugContext(ctx, "acquire through the owner found nothing", "session_id", rec.ID, "owner", rec.Owner, "err", err)
		return nil, false
	}
	return resp, true
}

// proxyExchange serves an Exchange stream whose session another replica
// holds by relaying it to that replica: first (the open message) and every
// later request go up, every answer comes down. One goroutine per
// direction moves one message at a time, so each side's gRPC flow control
// holds back the other end to end: a runner that stops reading stalls the
// owner's sends, which stalls the owner's reads of requests. A send to the
// runner blocked for StallTimeout ends the stream as on the owner. Ending
// the runner's stream (it leaves, its deadline passes, Drain) cancels the
// stream to the owner; the owner ending its stream ends the runner's with
// the owner's status. A half-close by the runner is passed up, and the
// owner's remaining answers still come down.
func (s *Service) proxyExchange(ctx context.Context, cancel context.CancelCauseFunc, owner *orchestrator.NotOwnerError,
	first *orchestratorv1.ExchangeRequest, stream grpc.BidiStreamingServer[orchestratorv1.ExchangeRequest, orchestratorv1.ExchangeResponse],
) error {
	f := s.opts.Forwarder
	c, err := f.client(owner.Address)
	if err != nil {
		return f.answer(ctx, owner, err, nil)
	}
	up, err := c.Exchange(f.outgoing(ctx))
	if err != nil {
		return f.answer(ctx, owner, err, nil)
	}

	// Runner to owner. Its end is seen by the other direction: the owner
	// answers a half-close by ending its stream, and a failed send means
	// the owner's stream ended, which up.Recv reports.
	go func() {
		msg := first
		for {
			if err := up.Send(msg); err != nil {
				return
			}
			var err error
			if msg, err = stream.Recv(); err != nil {
				if errors.Is(err, io.EOF) {
					_ = up.CloseSend()
					return
				}
				cancel(err)
				return
			}
		}
	}()

	// Owner to runner.
	stalled := make(chan struct{})
	down := make(chan error, 1)
	go func() {
		w := newStallWatch(s.opts.StallTimeout, func() {
			cancel(status.Errorf(codes.ResourceExhausted, "runner stalled: responses not read for %s", s.opts.StallTimeout))
			close(stalled)
		})
		defer w.stop()
		for {
			msg, err := up.Recv()
			if errors.Is(err, io.EOF) {
				down <- nil
				return
			}
			if err != nil {
				down <- f.answer(ctx, owner, err, up.Trailer())
				return
			}
			w.sending()
			err = stream.Send(msg)
			w.sent()
			if err != nil {
				cancel(err)
				return
			}
		}
	}()

	select {
	case err := <-down:
		return err
	case <-stalled:
	case <-ctx.Done():
	}
	// Returning ends the runner's stream and, through ctx, the owner's:
	// both goroutines then return.
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		if _, ok := status.FromError(cause); ok {
			return cause
		}
		return toStatus(cause)
	}
	return stream.Context().Err()
}
