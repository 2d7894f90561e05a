package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/session"
)

// waitingCore holds every call until the caller's context ends, as a store
// read or a watch does, and then fails the way the core would: with the
// context's error wrapped, or (Send) with a failure that followed from it.
type waitingCore struct {
	stubCore
	started chan string
}

func (c *waitingCore) wait(ctx context.Context, method string) {
	c.started <- method
	<-ctx.Done()
}

func (c *waitingCore) ListSessions(ctx context.Context, _ orchestrator.SessionFilter, _ orchestrator.Page) ([]*session.Record, string, error) {
	c.wait(ctx, "ListSessions")
	return nil, "", fmt.Errorf("store: list sessions: %w", ctx.Err())
}

func (c *waitingCore) WatchSessions(ctx context.Context, _ int64, _ orchestrator.SessionFilter) iter.Seq2[orchestrator.Event, error] {
	return func(func(orchestrator.Event, error) bool) { c.wait(ctx, "WatchSessions") }
}

func (c *waitingCore) OpenChannel(ctx context.Context, _, _ string, _ orchestrator.Channel) (orchestrator.RelayChannel, *session.Record, error) {
	return idleChannel{}, &session.Record{ID: "s1"}, nil
}

func (c *waitingCore) Send(ctx context.Context, _, _ string, _ orchestrator.Channel, _ orchestrator.Request) (orchestrator.Response, error) {
	c.wait(ctx, "Send")
	return orchestrator.Response{}, fmt.Errorf("%w: openOBD stream closed", orchestrator.ErrUnavailable)
}

// idleChannel never answers and never closes.
type idleChannel struct{}

func (idleChannel) Do(ctx context.Context, _ orchestrator.Request) (orchestrator.Response, error) {
	<-ctx.Done()
	return orchestrator.Response{}, ctx.Err()
}
func (idleChannel) Done() <-chan struct{} { return nil }
func (idleChannel) Err() error            { return nil }
func (idleChannel) Close() error          { return nil }

// lockedBuffer is a bytes.Buffer safe for the server's and the test's
// goroutines; wrote receives a signal after writes.
type lockedBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{}
}

func newLockedBuffer() *lockedBuffer { return &lockedBuffer{wrote: make(chan struct{}, 1)} }

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case l.wrote <- struct{}{}:
	default:
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

// await waits until the finished-call record of method is logged.
func (l *lockedBuffer) await(ctx context.Context, t *testing.T, method string) map[string]any {
	t.Helper()
	for {
		if rec, ok := l.finished(method); ok {
			return rec
		}
		select {
		case <-l.wrote:
		case <-ctx.Done():
			t.Fatalf("no finished-call log of %s", method)
		}
	}
}

// finished returns the "finished call" log record of method, if logged.
func (l *lockedBuffer) finished(method string) (map[string]any, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for line := range strings.Lines(l.b.String()) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["grpc.method"] == method && rec["grpc.code"] != nil {
			return rec, true
		}
	}
	return nil, false
}

// A client that cancels a call, or whose deadline passes, is logged at INFO
// with CANCELED or DEADLINE_EXCEEDED, for unary calls and both stream
// kinds, whatever the core returned.
func TestClientCancelOrDeadlineLoggedWithItsCode(t *testing.T) {
	core := &waitingCore{started: make(chan string, 1)}
	logs := newLockedBuffer()
	srv := NewServer(NewService(core, Options{}), ServerOptions{
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	lis := bufconn.Listen(1 << 20)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := orchestratorv1.NewOrchestratorServiceClient(conn)

	calls := map[string]func(ctx context.Context) error{
		"ListSessions": func(ctx context.Context) error {
			_, err := client.ListSessions(ctx, &orchestratorv1.ListSessionsRequest{})
			return err
		},
		"Send": func(ctx context.Context) error {
			_, err := client.Send(ctx, &orchestratorv1.SendRequest{
				SessionId: "s1", Channel: &orchestratorv1.Channel{BusName: "can0", RequestId: 0x7E0, ResponseId: 0x7E8},
				Payload: []byte{0x22, 0xF1, 0x90},
			})
			return err
		},
		"WatchSessions": func(ctx context.Context) error {
			w, err := client.WatchSessions(ctx, &orchestratorv1.WatchSessionsRequest{})
			if err == nil {
				_, err = w.Recv()
			}
			return err
		},
		"Exchange": func(ctx context.Context) error {
			x, err := client.Exchange(ctx)
			if err != nil {
				return err
			}
			if err := x.Send(&orchestratorv1.ExchangeRequest{Kind: &orchestratorv1.ExchangeRequest_Open{Open: &orchestratorv1.OpenChannel{
				SessionId: "s1", Channel: &orchestratorv1.Channel{BusName: "can0", RequestId: 0x7E0, ResponseId: 0x7E8},
			}}}); err != nil {
				return err
			}
			if _, err := x.Recv(); err != nil { // opened
				return err
			}
			if err := x.Send(&orchestratorv1.ExchangeRequest{Kind: &orchestratorv1.ExchangeRequest_Request{Request: &orchestratorv1.UdsRequest{
				Payload: []byte{0x22, 0xF1, 0x90},
			}}}); err != nil {
				return err
			}
			core.started <- "Exchange" // the request is on its way to the idle channel
			_, err = x.Recv()
			return err
		},
	}
	for _, end := range []struct {
		name string
		code codes.Code
	}{{"cancel", codes.Canceled}, {"deadline", codes.DeadlineExceeded}} {
		for name, call := range calls {
			t.Run(end.name+"/"+name, func(t *testing.T) {
				logs.reset()
				ctx, cancel := context.WithCancel(testContext(t))
				defer cancel()
				if end.code == codes.DeadlineExceeded {
					// Long enough to reach the core on a busy machine: the
					// call is only ended once it waits there.
					ctx, cancel = context.WithTimeout(ctx, time.Second)
					defer cancel()
				}
				errc := make(chan error, 1)
				go func() { errc <- call(ctx) }()
				select {
				case <-core.started:
				case err := <-errc:
					t.Fatalf("%s ended before reaching the core: %v", name, err)
				}
				if end.code == codes.Canceled {
					cancel()
				}
				if err := <-errc; status.Code(err) != end.code {
					t.Errorf("%s returned %v to the client, want %s", name, err, end.code)
				}
				rec := logs.await(testContext(t), t, name)
				if rec["level"] != "INFO" || rec["grpc.code"] != end.code.String() {
					t.Errorf("%s logged at %v with code %v, want INFO with %s: %v", name, rec["level"], rec["grpc.code"], end.code, rec)
				}
			})
		}
	}
}
