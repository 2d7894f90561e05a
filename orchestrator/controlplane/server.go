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
	}, opts.Unary...)
	stream := append([]grpc.StreamServerInterceptor{
		recovery.StreamServerInterceptor(recoveryOpt),
		logging.StreamServerInterceptor(interceptorLogger(logger), logOpts...),
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

// interceptorLogger adapts slog to go-grpc-middleware's logging.
func interceptorLogger(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}
