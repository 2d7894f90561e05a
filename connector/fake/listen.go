package fake

import (
	"net"
	"testing"
)

// Listen starts a fake on a loopback TCP port for the test tb and returns it
// with its address. The fake's grpc_endpoint is that address unless
// opts.Endpoint is set. The fake stops when the test ends.
func Listen(tb testing.TB, opts Options) (*Server, string) {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	if opts.Endpoint == "" {
		opts.Endpoint = lis.Addr().String()
	}
	s, err := New(opts)
	if err != nil {
		_ = lis.Close()
		tb.Fatalf("fake.New: %v", err)
	}
	ctx := tb.Context()
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, lis) }()
	tb.Cleanup(func() {
		// tb.Context is canceled before cleanups run, so Serve is stopping.
		if err := <-errc; err != nil {
			tb.Errorf("fake.Serve: %v", err)
		}
	})
	return s, lis.Addr().String()
}
