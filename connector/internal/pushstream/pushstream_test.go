package pushstream_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/obdorch/obdorch/connector/fake"
	"github.com/obdorch/obdorch/connector/internal/pushstream"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const method = openobdv1.Session_OpenSessionTokenStream_FullMethodName

// recorder is a Handler that records what it is given.
type recorder struct {
	msgs chan string // token values
	end  chan error
}

func newRecorder() *recorder {
	return &recorder{msgs: make(chan string, 64), end: make(chan error, 1)}
}

func (r *recorder) Message(msg []byte) {
	var tok openobdv1.SessionToken
	if err := proto.Unmarshal(msg, &tok); err != nil {
		r.msgs <- "malformed: " + err.Error()
		return
	}
	r.msgs <- tok.GetValue()
}

func (r *recorder) End(err error) {
	select {
	case r.end <- err:
	default:
		panic("End called twice")
	}
}

// event waits for what the handler hears next: a message, or the end
// (ended true). Messages come before the end, so they are taken first.
func (r *recorder) event(t *testing.T) (msg string, err error, ended bool) {
	t.Helper()
	select {
	case m := <-r.msgs:
		return m, nil, false
	default:
	}
	select {
	case m := <-r.msgs:
		return m, nil, false
	case err := <-r.end:
		return "", err, true
	case <-time.After(10 * time.Second):
		t.Fatal("the handler heard nothing")
	}
	return "", nil, false
}

// next returns the next message; the end instead fails the test.
func (r *recorder) next(t *testing.T) string {
	t.Helper()
	m, err, ended := r.event(t)
	if ended {
		t.Fatalf("stream ended (%v), want a message", err)
	}
	return m
}

// ended returns how the stream ended; a message instead fails the test.
func (r *recorder) ended(t *testing.T) error {
	t.Helper()
	m, err, ended := r.event(t)
	if !ended {
		t.Fatalf("message %q, want the end of the stream", m)
	}
	return err
}

// tokenServer is openOBD's token stream as a test steers it: it sends the
// tokens it is given, and ends the call with the error it is given (nil for
// OK) or when the client cancels.
type tokenServer struct {
	openobdv1.UnimplementedSessionServer
	tokens chan string
	end    chan error
	calls  chan metadata.MD // the metadata of every call
	gone   chan codes.Code  // the code a call ended with on the server
}

func newTokenServer() *tokenServer {
	return &tokenServer{tokens: make(chan string), end: make(chan error, 1), calls: make(chan metadata.MD, 16), gone: make(chan codes.Code, 16)}
}

func (s *tokenServer) OpenSessionTokenStream(_ *openobdv1.EmptyMessage, stream grpc.ServerStreamingServer[openobdv1.SessionToken]) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	s.calls <- md
	for {
		select {
		case tok := <-s.tokens:
			if err := stream.Send(&openobdv1.SessionToken{Value: tok}); err != nil {
				s.gone <- status.Code(err)
				return err
			}
		case err := <-s.end:
			return err
		case <-stream.Context().Done():
			s.gone <- status.FromContextError(stream.Context().Err()).Code()
			return stream.Context().Err()
		}
	}
}

// serve runs srv on a loopback listener with creds and returns its address.
func serve(t *testing.T, srv openobdv1.SessionServer, creds credentials.TransportCredentials) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(creds))
	openobdv1.RegisterSessionServer(gs, srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		gs.Serve(lis)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	return lis.Addr().String()
}

func newPool(t *testing.T, addr string, opts pushstream.Options) *pushstream.Pool {
	t.Helper()
	if opts.Credentials == nil {
		opts.Credentials = insecure.NewCredentials()
	}
	p := pushstream.NewPool(addr, opts)
	t.Cleanup(func() { p.Close() })
	return p
}

func open(t *testing.T, p *pushstream.Pool, h pushstream.Handler) *pushstream.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := p.Open(ctx, method, []hpack.HeaderField{{Name: "authorization", Value: "Bearer secret", Sensitive: true}}, nil, h)
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	return s
}

// TestGRPCServerStream: against grpc-go's server, the messages arrive in
// order with the call's headers, and the server's status ends the call.
func TestGRPCServerStream(t *testing.T) {
	srv := newTokenServer()
	p := newPool(t, serve(t, srv, insecure.NewCredentials()), pushstream.Options{UserAgent: "pushstream-test"})
	r := newRecorder()
	open(t, p, r)
	md := <-srv.calls
	if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer secret" {
		t.Errorf("authorization = %q, want Bearer secret", got)
	}
	if got := md.Get("user-agent"); len(got) != 1 || got[0][:len("pushstream-test")] != "pushstream-test" {
		t.Errorf("user-agent = %q", got)
	}
	for _, want := range []string{"t1", "t2", "t3"} {
		srv.tokens <- want
		if got := r.next(t); got != want {
			t.Fatalf("message = %q, want %q", got, want)
		}
	}
	srv.end <- status.Error(codes.NotFound, "session 100% gone")
	err := r.ended(t)
	if s, _ := status.FromError(err); s.Code() != codes.NotFound || s.Message() != "session 100% gone" {
		t.Errorf("end = %v, want NotFound with the server's message", err)
	}
}

// TestOKEndsWithEOF: a call the server ends with OK ends with io.EOF.
func TestOKEndsWithEOF(t *testing.T) {
	srv := newTokenServer()
	p := newPool(t, serve(t, srv, insecure.NewCredentials()), pushstream.Options{})
	r := newRecorder()
	open(t, p, r)
	srv.end <- nil
	if err := r.ended(t); !errors.Is(err, io.EOF) {
		t.Errorf("end = %v, want io.EOF", err)
	}
}

// TestCloseCancelsTheCall: Close cancels the call on the server, and the
// handler hears nothing more.
func TestCloseCancelsTheCall(t *testing.T) {
	srv := newTokenServer()
	p := newPool(t, serve(t, srv, insecure.NewCredentials()), pushstream.Options{})
	r := newRecorder()
	s := open(t, p, r)
	<-srv.calls
	s.Close()
	select {
	case code := <-srv.gone:
		if code != codes.Canceled {
			t.Errorf("the server's call ended with %v, want Canceled", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server's call did not end")
	}
	select {
	case err := <-r.end:
		t.Errorf("End(%v) after Close", err)
	default:
	}
	// The connection stays for the next call.
	r2 := newRecorder()
	open(t, p, r2)
	<-srv.calls
	srv.tokens <- "again"
	if got := r2.next(t); got != "again" {
		t.Errorf("message = %q, want again", got)
	}
}

// TestManyStreamsOneConnection: calls share a connection, and each gets
// its own messages.
func TestManyStreamsOneConnection(t *testing.T) {
	srv := &echoIDServer{}
	addr := serve(t, srv, insecure.NewCredentials())
	var dials int
	var mu sync.Mutex
	p := newPool(t, addr, pushstream.Options{Dial: func(ctx context.Context, addr string) (net.Conn, error) {
		mu.Lock()
		dials++
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}})
	const n = 50
	recs := make([]*recorder, n)
	for i := range recs {
		recs[i] = newRecorder()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := p.Open(ctx, method, []hpack.HeaderField{{Name: "authorization", Value: "Bearer " + string(rune('A'+i))}}, nil, recs[i])
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range recs {
		if got, want := r.next(t), "Bearer "+string(rune('A'+i)); got != want {
			t.Errorf("stream %d got %q, want %q", i, got, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if dials != 1 {
		t.Errorf("%d connections dialled for %d calls, want 1", dials, n)
	}
}

// echoIDServer sends each call its own authorization header back, then
// waits for the call to end.
type echoIDServer struct {
	openobdv1.UnimplementedSessionServer
}

func (echoIDServer) OpenSessionTokenStream(_ *openobdv1.EmptyMessage, stream grpc.ServerStreamingServer[openobdv1.SessionToken]) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	if err := stream.Send(&openobdv1.SessionToken{Value: md.Get("authorization")[0]}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

// TestTLS: with gRPC's TLS credentials the call runs over TLS (h2 by ALPN),
// verified against the server's CA.
func TestTLS(t *testing.T) {
	cert, err := fake.NewCertificate("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv := newTokenServer()
	addr := serve(t, srv, credentials.NewTLS(cert.ServerConfig()))
	p := newPool(t, addr, pushstream.Options{Credentials: credentials.NewClientTLSFromCert(cert.RootCAs(), "")})
	r := newRecorder()
	open(t, p, r)
	srv.tokens <- "over-tls"
	if got := r.next(t); got != "over-tls" {
		t.Errorf("message = %q", got)
	}

	// A client that does not trust the CA cannot open.
	untrusting := newPool(t, addr, pushstream.Options{Credentials: credentials.NewClientTLSFromCert(nil, "")})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := untrusting.Open(ctx, method, nil, nil, newRecorder()); status.Code(err) != codes.Unavailable {
		t.Errorf("Open() without the CA = %v, want Unavailable", err)
	}
}

// TestPoolCloseEndsCalls: closing the pool ends its open calls with
// Unavailable and stops its goroutines; Open fails afterwards.
func TestPoolCloseEndsCalls(t *testing.T) {
	srv := newTokenServer()
	addr := serve(t, srv, insecure.NewCredentials())
	before := goleak.IgnoreCurrent()
	p := pushstream.NewPool(addr, pushstream.Options{Credentials: insecure.NewCredentials()})
	r := newRecorder()
	open(t, p, r)
	<-srv.calls
	p.Close()
	if err := r.ended(t); status.Code(err) != codes.Unavailable {
		t.Errorf("end = %v, want Unavailable", err)
	}
	if _, err := p.Open(context.Background(), method, nil, nil, newRecorder()); !errors.Is(err, pushstream.ErrClosed) {
		t.Errorf("Open() after Close = %v, want ErrClosed", err)
	}
	// The server's side of the call ends, too.
	<-srv.gone
	if err := goleak.Find(before); err != nil {
		t.Error(err)
	}
}

// TestServerGoneEndsCalls: when the server goes away the calls end with
// Unavailable, and a later Open dials again.
func TestServerGoneEndsCalls(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	srv := newTokenServer()
	gs := grpc.NewServer()
	openobdv1.RegisterSessionServer(gs, srv)
	go gs.Serve(lis)
	p := newPool(t, addr, pushstream.Options{})
	r := newRecorder()
	open(t, p, r)
	<-srv.calls
	gs.Stop()
	if err := r.ended(t); status.Code(err) != codes.Unavailable {
		t.Errorf("end = %v, want Unavailable", err)
	}

	srv2 := newTokenServer()
	lis2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("address %s not free again: %v", addr, err)
	}
	gs2 := grpc.NewServer()
	openobdv1.RegisterSessionServer(gs2, srv2)
	go gs2.Serve(lis2)
	defer gs2.Stop()
	r2 := newRecorder()
	open(t, p, r2)
	srv2.tokens <- "back"
	if got := r2.next(t); got != "back" {
		t.Errorf("message = %q", got)
	}
}
