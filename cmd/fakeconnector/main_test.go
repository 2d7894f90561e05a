package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/obdorch/obdorch/connector"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
	"github.com/obdorch/obdorch/partner"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func noEnv(string) string { return "" }

func TestRunServesAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuffer
	exit := make(chan int, 1)
	env := map[string]string{"FAKECONNECTOR_CLIENT_SECRET": "from-env"}
	go func() {
		exit <- run(ctx, []string{"--openobd-addr", "127.0.0.1:0", "--partner-addr", "127.0.0.1:0", "--tickets", "2", "--seed", "3"},
			func(k string) string { return env[k] }, &stdout, &stderr)
	}()

	addrRE := regexp.MustCompile(`openOBD gRPC\s+(\S+)`)
	ticketRE := regexp.MustCompile(`(?m)^  (\d+)\s`)
	var addr string
	deadline := time.Now().Add(time.Minute) // a bound on the wait, not a speed
	for addr == "" {
		// The banner is written a line at a time: wait for its last lines.
		if m := addrRE.FindStringSubmatch(stdout.String()); m != nil && len(ticketRE.FindAllString(stdout.String(), -1)) >= 2 {
			addr = m[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	out := stdout.String()
	for _, want := range []string{`client id\s+demo-client\n`, `client secret\s+from-env\n`, `/_fake/openobd/\n`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	numbers := ticketRE.FindAllStringSubmatch(out, -1)
	if len(numbers) != 2 {
		t.Fatalf("banner lists %d tickets, want 2:\n%s", len(numbers), out)
	}

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctrl := openobdv1.NewSessionControllerClient(conn)
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	_, err = ctrl.GetSessionControllerToken(cctx, &openobdv1.Authenticate{ClientId: "demo-client", ClientSecret: "demo-secret"})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("token with the default secret = %v, want INVALID_ARGUMENT (the secret came from the environment)", err)
	}
	if _, err := ctrl.GetSessionControllerToken(cctx, &openobdv1.Authenticate{ClientId: "demo-client", ClientSecret: "from-env"}); err != nil {
		t.Fatalf("getSessionControllerToken: %v", err)
	}

	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("run = %d, want 0; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--nope"}, "flag provided but not defined"},
		{"remote address", []string{"--openobd-addr", "0.0.0.0:17001"}, "not a loopback address"},
		{"bad address", []string{"--partner-addr", "17002"}, "--partner-addr"},
		{"negative tickets", []string{"--tickets", "-1"}, "--tickets"},
		{"zero rotation", []string{"--token-rotation", "0s"}, "--token-rotation must be positive"},
		{"bad interrupt code", []string{"--interrupt-code", "SOMETIMES"}, "--interrupt-code"},
		{"bad log format", []string{"--log-format", "xml"}, "--log-format"},
		{"empty secret", []string{"--client-secret", ""}, "--client-secret"},
		{"tls without ca file", []string{"--tls"}, "--tls-ca-file"},
		{"ca file without tls", []string{"--tls-ca-file", "ca.pem"}, "--tls-ca-file"},
		{"bad connector shape", []string{"--connector-shape", "number"}, "--connector-shape"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			if code := run(t.Context(), tc.args, noEnv, &stdout, &stderr); code != 2 {
				t.Fatalf("run(%v) = %d, want 2", tc.args, code)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("run(%v) stderr = %q, want it to mention %q", tc.args, stderr.String(), tc.want)
			}
		})
	}
}

// With --tls the fake serves openOBD over TLS, writes its CA to
// --tls-ca-file and names the file in the banner; a client trusting that CA
// starts and attaches a session on the endpoint it is handed. With
// --connector-shape integer the Partner API's connectors carry an integer id
// and their UUID.
func TestRunTLSAndIntegerConnectors(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	var stdout, stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"--openobd-addr", "127.0.0.1:0", "--partner-addr", "127.0.0.1:0", "--tickets", "1",
			"--tls", "--tls-ca-file", caFile, "--connector-shape", "integer"}, noEnv, &stdout, &stderr)
	}()
	defer func() {
		cancel()
		if code := <-exit; code != 0 {
			t.Errorf("run = %d, want 0; stderr:\n%s", code, stderr.String())
		}
	}()
	banner := regexp.MustCompile(`openOBD gRPC\s+(\S+) \(TLS[^\n]*\n\s+openOBD CA certificate\s+(\S+)\n\s+Partner API\s+(\S+)`)
	ticketRow := regexp.MustCompile(`(?m)^  (\d+)\s`)
	var m, row []string
	deadline := time.Now().Add(time.Minute) // a bound on the wait, not a speed
	for m == nil || row == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no TLS banner with a ticket; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
		out := stdout.String()
		m = banner.FindStringSubmatch(out)
		if i := strings.Index(out, "demo tickets"); i >= 0 {
			row = ticketRow.FindStringSubmatch(out[i:])
		}
	}
	addr, printedCA, partnerURL := m[1], m[2], m[3]
	if printedCA != caFile {
		t.Errorf("banner names CA file %q, want %q", printedCA, caFile)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no PEM certificate", caFile)
	}
	ticket := row[1]

	host, portText, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portText)
	c, err := connector.New(connector.Config{
		ClientID: "demo-client", ClientSecret: "demo-secret", Host: host, Port: port, RootCAs: roots,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	info, err := c.StartSessionOnTicket(cctx, ticket)
	if err != nil {
		t.Fatalf("StartSessionOnTicket over TLS: %v", err)
	}
	s, err := c.Attach(cctx, info)
	if err != nil {
		t.Fatalf("Attach to %s over TLS: %v", info.GRPCEndpoint, err)
	}
	s.Close()

	pc, err := partner.NewClient(partner.Config{BaseURL: partnerURL, ClientID: "demo-client", ClientSecret: "demo-secret",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.CloseIdleConnections()
	for conn, err := range pc.Connectors(cctx, partner.Paging{}) {
		if err != nil {
			t.Fatalf("Connectors: %v", err)
		}
		if !conn.HasNumber || conn.ID == "" {
			t.Errorf("connector %+v: want an integer id and its UUID", conn)
		}
	}
}
