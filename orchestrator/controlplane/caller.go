package controlplane

import (
	"context"

	"google.golang.org/grpc/peer"
)

type callerKey struct{}

// WithCaller returns a context naming the authenticated caller; the auth
// interceptor sets it and handlers record it as the actor of what they do.
func WithCaller(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, callerKey{}, name)
}

// callerName is the authenticated caller, or the peer address when the
// control plane runs without authentication.
func callerName(ctx context.Context) string {
	if name, ok := ctx.Value(callerKey{}).(string); ok && name != "" {
		return name
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return "control-plane@" + p.Addr.String()
	}
	return "control-plane"
}
