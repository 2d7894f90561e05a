package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
)

// ServerOptions configure the control-plane gRPC server.
type ServerOptions struct {
	// Credentials secure the listener; nil serves plaintext.
	Credentials credentials.TransportCredentials
	// Unary and Stream interceptors run after recovery and logging (auth,
	// validation).
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
	// MaxConcurrentStreams per connection (default 1024).
	MaxConcurrentStreams uint32
	// MaxRecvMsgSize in bytes (default 64 KiB: the largest request is a
	// 4095-byte UDS payload or a page query).
	MaxRecvMsgSize int
	Logger         *slog.Logger
	// ExtraOptions are appended to the server options (tests).
	ExtraOptions []grpc.ServerOption
}

// Server is the control-plane gRPC server with its health service.
type Server struct {
	*grpc.Server
	Health *health.Server
}

// NewServer builds the control-plane server: recovery outermost, then the
// OpenTelemetry stats handler, logging, the given interceptors; keepalive
// enforcement fit for long watches; health (NOT_SERVING until told
// otherwise) and reflection registered.
func NewServer(svc *Service, opts ServerOptions) *Server {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxConcurrentStreams == 0 {
		opts.MaxConcurrentStreams = 1024
	}
	if opts.MaxRecvMsgSize == 0 {
		opts.MaxRecvMsgSize = 64 << 10
	}
	recoveryOpt := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		logger.ErrorContext(ctx, "panic in handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	// Successful calls are logged at debug level: at a runner's pace
	// (thousands of calls a second) they would drown everything else.
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(func(c codes.Code) logging.Level {
			if c == codes.OK {
				return logging.LevelDebug
			}
			return logging.DefaultServerCodeToLevel(c)
		}),
	}
	unary := append([]grpc.UnaryServerInterceptor{
		recovery.UnaryServerInterceptor(recoveryOpt),
		logging.UnaryServerInterceptor(interceptorLogger(logger), logOpts...),
		unaryClientGone,
	}, opts.Unary...)
	stream := append([]grpc.StreamServerInterceptor{
		recovery.StreamServerInterceptor(recoveryOpt),
		logging.StreamServerInterceptor(interceptorLogger(logger), logOpts...),
		streamClientGone,
	}, opts.Stream...)

	serverOpts := []grpc.ServerOption{
		grpc.StatsHandler(otelgrpc.NewServerHandler()),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxConcurrentStreams(opts.MaxConcurrentStreams),
		grpc.MaxRecvMsgSize(opts.MaxRecvMsgSize),
		// Static flow-control windows: requests are small (MaxRecvMsgSize),
		// a stalled runner's stream holds at most 64 KiB here, and the
		// dynamic window's bandwidth probe would send a ping for nearly every
		// request of an Exchange stream.
		grpc.StaticStreamWindowSize(64 << 10), grpc.StaticConnWindowSize(1 << 20),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
	if opts.Credentials != nil {
		serverOpts = append(serverOpts, grpc.Creds(opts.Credentials))
	}
	serverOpts = append(serverOpts, opts.ExtraOptions...)

	s := grpc.NewServer(serverOpts...)
	orchestratorv1.RegisterOrchestratorServiceServer(s, svc)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	hs.SetServingStatus(orchestratorv1.OrchestratorService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	reflection.Register(s)
	return &Server{Server: s, Health: hs}
}

// SetServing flips the health of the server and the orchestrator service.
func (s *Server) SetServing(serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.Health.SetServingStatus("", st)
	s.Health.SetServingStatus(orchestratorv1.OrchestratorService_ServiceDesc.ServiceName, st)
}

// interceptorLogger adapts slog to go-grpc-middleware's logging. A call
// whose client cancelled it or whose deadline passed (its context is done)
// is logged at INFO at most: the client chose to stop, nothing here failed.
func interceptorLogger(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		if ctx.Err() != nil && lvl > logging.LevelInfo {
			lvl = logging.LevelInfo
		}
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}

// clientGone gives a call that failed after its client cancelled it or its
// deadline passed the status that says so (CANCELED or DEADLINE_EXCEEDED),
// whatever the handler returned, so that logs and metrics carry the real
// code rather than UNKNOWN or a failure that followed from it. The client
// sees its own cancellation or deadline either way.
func clientGone(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	why := ctx.Err()
	if d, ok := ctx.Deadline(); ok && time.Until(d) < deadlineSkew {
		// The client's deadline: the client's timer fires first (the
		// server's deadline is later by the request's transit time) and its
		// cancellation arrives before the server's own timer fires, so ctx
		// says only "canceled".
		why = context.DeadlineExceeded
	}
	st := status.FromContextError(why)
	if status.Code(err) == st.Code() {
		return err
	}
	return status.Error(st.Code(), st.Message()+": "+status.Convert(err).Message())
}

// deadlineSkew is how much earlier than the server's deadline a client's
// timer may end a call (transit time and scheduling on a busy machine).
const deadlineSkew = 250 * time.Millisecond

func unaryClientGone(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	return resp, clientGone(ctx, err)
}

func streamClientGone(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return clientGone(ss.Context(), handler(srv, ss))
}
