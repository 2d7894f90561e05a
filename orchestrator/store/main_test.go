package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/obdorch/obdorch/internal/leakcheck"
	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
)

const defaultTestTimeout = 20 * time.Second

// endpoints are the client URLs of the embedded server the tests share.
var endpoints []string

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(withServer{m})
}

// withServer runs the tests with a shared embedded server, stopped before
// goleak looks for leftover goroutines.
type withServer struct{ m *testing.M }

func (w withServer) Run() int {
	dir, err := os.MkdirTemp("", "store-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	srv, err := store.StartEmbedded(ctx, store.EmbeddedConfig{Dir: dir, UnsafeNoFsync: true, Logger: testLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	endpoints = srv.Endpoints()
	code := w.m.Run()
	srv.Close()
	leakcheck.Settle()
	return code
}

// testLogger reports errors only: tests lose leases and stop servers on
// purpose.
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	t.Cleanup(cancel)
	return ctx
}

var (
	prefixes sync.Map // testing.TB to its prefix
	runs     atomic.Int64
)

// testPrefix gives each test its own key space on the shared server, also
// when it runs more than once (-count).
func testPrefix(t testing.TB) string {
	p := fmt.Sprintf("/test/%s/%d/", strings.ReplaceAll(t.Name(), "/", "_"), runs.Add(1))
	got, loaded := prefixes.LoadOrStore(t, p)
	if !loaded {
		t.Cleanup(func() { prefixes.Delete(t) })
	}
	return got.(string)
}

func testConfig(t testing.TB, replica string) store.Config {
	return store.Config{
		Endpoints: endpoints,
		Prefix:    testPrefix(t),
		Replica:   replica,
		Logger:    testLogger(),
	}
}

// openStore opens a Store for replica on the shared server, closed when the
// test ends.
func openStore(t testing.TB, cfg store.Config) *store.Store {
	t.Helper()
	s, err := store.Open(testContext(t), cfg)
	if err != nil {
		t.Fatalf("Open(%s) = %v", cfg.Replica, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close(%s) = %v", cfg.Replica, err)
		}
	})
	return s
}

// rawClient is a plain etcd client for what replicas never do: revoke
// another's lease, compact, inspect keys.
func rawClient(t testing.TB, eps []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("clientv3.New = %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var testTime = time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)

func newRecord(id, ticket, connector string) *session.Record {
	r := session.New(id, "test", "intake", testTime)
	r.TicketID, r.ConnectorID = ticket, connector
	r.OpenOBD.Token = "secret-token"
	return r
}

// transition moves rec to state, failing the test if the lifecycle refuses.
func transition(t testing.TB, rec *session.Record, to session.State) {
	t.Helper()
	if err := rec.Transition(to, "test", "test step", testTime); err != nil {
		t.Fatal(err)
	}
}
