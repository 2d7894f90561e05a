package connector

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/obdorch/obdorch/connector/uds"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

const testTimeout = 10 * time.Second

func TestKindOfStatus(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"invalid client", status.Error(codes.InvalidArgument, "Invalid client"), KindTerminal},
		{"no ticket", status.Error(codes.FailedPrecondition, `No ticket found with the ticket number: "7961425"`), KindTerminal},
		{"in use", status.Error(codes.Unavailable, "Resource already in use."), KindInUse},
		{"no free resources", status.Error(codes.Unavailable, "There are no free resources available at the moment. Please try again in two minutes."), KindRetryable},
		{"unavailable", status.Error(codes.Unavailable, ""), KindRetryable},
		{"only authenticate", status.Error(codes.PermissionDenied, "Only allowed call to be made at this point is the authenticate() call"), KindTerminal},
		{"already authenticated", status.Error(codes.PermissionDenied, "Session is already authenticated, at this point the authenticate() call is not permitted"), KindTerminal},
		{"unauthenticated", status.Error(codes.Unauthenticated, "Token has expired."), KindTerminal},
		// No text decides that a session ended: these are confirmed with
		// getSession by the session (TestInterruptedWithEveryStatusCode).
		{"interrupted stream", status.Error(codes.Canceled, "Session was interrupted."), KindRetryable},
		{"not active", status.Error(codes.FailedPrecondition, "Session is not active (state: interrupted)."), KindTerminal},
		{"cancelled otherwise", status.Error(codes.Canceled, "Session was finished."), KindRetryable},
		{"not found", status.Error(codes.NotFound, `No session found with id: "x"`), KindNotFound},
		{"call timeout", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), KindRetryable},
		{"internal", status.Error(codes.Internal, "boom"), KindRetryable},
		{"unimplemented", status.Error(codes.Unimplemented, "nope"), KindTerminal},
		{"not a status", errors.New("connection reset"), KindRetryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify(context.Background(), "op", tt.err)
			if got := KindOf(err); got != tt.want {
				t.Errorf("KindOf(classify(%v)) = %v, want %v", tt.err, got, tt.want)
			}
			if _, ok := status.FromError(err); ok {
				t.Errorf("classify(%v) = %v still carries a gRPC status", tt.err, err)
			}
		})
	}
}

func TestClassifyPassesContextErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := classify(ctx, "op", status.Error(codes.Canceled, "context canceled")); err != context.Canceled {
		t.Errorf("classify(cancelled ctx) = %v, want context.Canceled", err)
	}
	if err := classify(context.Background(), "op", context.DeadlineExceeded); err != context.DeadlineExceeded {
		t.Errorf("classify(DeadlineExceeded) = %v, want it unchanged", err)
	}
	if err := classify(context.Background(), "op", nil); err != nil {
		t.Errorf("classify(nil) = %v, want nil", err)
	}
}

func TestErrorIsAndText(t *testing.T) {
	err := classify(context.Background(), "startSessionOnTicket",
		status.Error(codes.Unavailable, "Resource already in use. token=abc123"), "abc123")
	if !errors.Is(err, ErrInUse) || errors.Is(err, ErrRetryable) {
		t.Errorf("errors.Is(%v, ErrInUse/ErrRetryable) = %v/%v, want true/false", err, errors.Is(err, ErrInUse), errors.Is(err, ErrRetryable))
	}
	want := "connector: startSessionOnTicket: in use: Resource already in use. token=[redacted] (Unavailable)"
	if got := err.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if KindOf(errors.New("x")) != KindUnknown || KindOf(nil) != KindUnknown {
		t.Error("KindOf(non-connector error) != KindUnknown")
	}
	wrapped := errors.Join(errors.New("other"), &Error{Kind: KindNotFound, Op: "getSession"})
	if KindOf(wrapped) != KindNotFound || !errors.Is(wrapped, ErrNotFound) {
		t.Errorf("KindOf(joined) = %v, want %v", KindOf(wrapped), KindNotFound)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{ClientID: "id", ClientSecret: "secret"}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string // substring of the error; "" for valid
	}{
		{"valid with defaults", func(*Config) {}, ""},
		{"no client id", func(c *Config) { c.ClientID = "" }, "connector: ClientID is required"},
		{"no secret", func(c *Config) { c.ClientSecret = "" }, "connector: ClientSecret is required"},
		{"bad port", func(c *Config) { c.Port = 70000 }, "Port"},
		{"negative timeout", func(c *Config) { c.CallTimeout = -time.Second }, "CallTimeout"},
		{"negative p2*", func(c *Config) { c.P2Star = -time.Second }, "P2Star"},
		{"margin too long", func(c *Config) { c.TokenLifetime = time.Minute; c.TokenRefreshMargin = time.Minute }, "TokenRefreshMargin"},
		{"backoff inverted", func(c *Config) { c.ReconnectInitial = time.Minute; c.ReconnectMax = time.Second }, "ReconnectInitial"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.modify(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want an error naming %q", err, tt.want)
			}
		})
	}
	if _, err := New(Config{ClientSecret: "x"}); err == nil || err.Error() != "connector: ClientID is required" {
		t.Errorf("New(no ClientID) = %v, want the ClientID error", err)
	}
	c := ok.withDefaults()
	if c.Host != DefaultHost || c.Port != 443 || c.ClusterID != "001" || c.TokenLifetime != 5400*time.Second ||
		c.TokenRefreshMargin != 30*time.Second || c.P2Star != 5*time.Second || c.BusyRetryInterval != 200*time.Millisecond {
		t.Errorf("withDefaults() = %+v, want the documented defaults", c)
	}
}

func TestSplitEndpoint(t *testing.T) {
	tests := []struct {
		in          string
		defaultPort int
		wantAddr    string
		wantErr     bool
	}{
		{"grpc.openobd.com", 443, "grpc.openobd.com:443", false},
		{"grpc.openobd.com", 17001, "grpc.openobd.com:17001", false},
		{"grpc.openobd.com:443", 17001, "grpc.openobd.com:443", false},
		{"127.0.0.1:5000", 443, "127.0.0.1:5000", false},
		{"[::1]:5000", 443, "[::1]:5000", false},
		{"::1", 443, "[::1]:443", false},
		{"[::1]", 8443, "[::1]:8443", false},
		{"host:0", 443, "", true},
		{"host:http", 443, "", true},
		{":443", 443, "", true},
		{"", 443, "", true},
	}
	for _, tt := range tests {
		addr, err := splitEndpoint(tt.in, tt.defaultPort)
		if (err != nil) != tt.wantErr || addr != tt.wantAddr {
			t.Errorf("splitEndpoint(%q, %d) = %q, %v; want %q, error %v", tt.in, tt.defaultPort, addr, err, tt.wantAddr, tt.wantErr)
		}
	}
}

// TestTransportCredentials: TLS on every port unless the operator says
// Insecure; the port an endpoint names never turns TLS off.
func TestTransportCredentials(t *testing.T) {
	tests := []struct {
		port     int
		insecure bool
		want     string
	}{
		{443, false, "tls"},
		{443, true, "insecure"},
		{8443, false, "tls"},
		{50051, false, "tls"},
		{50051, true, "insecure"},
	}
	for _, tt := range tests {
		c := &Client{cfg: Config{Port: tt.port, Insecure: tt.insecure}}
		if got := c.transportCredentials().Info().SecurityProtocol; got != tt.want {
			t.Errorf("transportCredentials() with Port %d, Insecure %v = %s, want %s", tt.port, tt.insecure, got, tt.want)
		}
	}
}

func TestTokenCacheSharesOneFetch(t *testing.T) {
	var fetches atomic.Int32
	release := make(chan struct{})
	tc := &tokenCache{
		fetch: func(ctx context.Context) (string, error) {
			fetches.Add(1)
			<-release
			return "tok", nil
		},
		now:      time.Now,
		lifetime: time.Hour,
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if v, err := tc.get(ctx); v != "tok" || err != nil {
				t.Errorf("get() = %q, %v; want tok, nil", v, err)
			}
		})
	}
	time.Sleep(20 * time.Millisecond) // let the callers pile up
	close(release)
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Errorf("fetches = %d, want 1", n)
	}
}

func TestTokenCacheExpiryAndInvalidate(t *testing.T) {
	now := time.Unix(0, 0)
	var fetches int
	tc := &tokenCache{
		fetch: func(context.Context) (string, error) {
			fetches++
			return "tok" + string(rune('0'+fetches)), nil
		},
		now:      func() time.Time { return now },
		lifetime: 5370 * time.Second, // 5400 s less the 30 s margin
	}
	ctx := context.Background()
	get := func() string {
		t.Helper()
		v, err := tc.get(ctx)
		if err != nil {
			t.Fatalf("get() error = %v", err)
		}
		return v
	}
	if v := get(); v != "tok1" {
		t.Fatalf("first get() = %q, want tok1", v)
	}
	now = now.Add(5369 * time.Second)
	if v := get(); v != "tok1" {
		t.Errorf("get() before the refresh time = %q, want tok1", v)
	}
	now = now.Add(time.Second)
	if v := get(); v != "tok2" {
		t.Errorf("get() at the refresh time = %q, want tok2", v)
	}
	tc.invalidate("stale") // another token: ignored
	if v := get(); v != "tok2" {
		t.Errorf("get() after invalidating another token = %q, want tok2", v)
	}
	tc.invalidate("tok2")
	if v := get(); v != "tok3" {
		t.Errorf("get() after invalidate = %q, want tok3", v)
	}
}

func TestTokenCacheLeaderGivesUp(t *testing.T) {
	started := make(chan struct{})
	var calls atomic.Int32
	tc := &tokenCache{
		fetch: func(ctx context.Context) (string, error) {
			if calls.Add(1) == 1 {
				close(started)
				<-ctx.Done()
				return "", ctx.Err()
			}
			return "tok", nil
		},
		now:      time.Now,
		lifetime: time.Hour,
	}
	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		_, err := tc.get(leaderCtx)
		leaderErr <- err
	}()
	<-started
	waiterDone := make(chan string, 1)
	go func() {
		v, _ := tc.get(context.Background())
		waiterDone <- v
	}()
	time.Sleep(10 * time.Millisecond)
	cancelLeader()
	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Errorf("leader get() = %v, want context.Canceled", err)
	}
	if v := <-waiterDone; v != "tok" {
		t.Errorf("waiter get() = %q, want tok from its own fetch", v)
	}
}

func TestHex(t *testing.T) {
	if got := encodeHex([]byte{0x22, 0xf1, 0x90, 0x0a}); got != "22F1900A" {
		t.Errorf("encodeHex = %q, want 22F1900A", got)
	}
	for _, in := range []string{"6af1b0", "6AF1B0", "6aF1b0"} {
		b, err := decodeHex(in)
		if err != nil || encodeHex(b) != "6AF1B0" {
			t.Errorf("decodeHex(%q) = % X, %v; want 6A F1 B0", in, b, err)
		}
	}
	for _, in := range []string{"6", "6G", "62F19"} {
		if _, err := decodeHex(in); err == nil {
			t.Errorf("decodeHex(%q) error = nil, want an error", in)
		}
	}
}

// FuzzDecodeResponse feeds arbitrary payload texts through the receive path
// of a channel: hex decoding, then matching against a request.
func FuzzDecodeResponse(f *testing.F) {
	f.Add("22F190", "62F19057565A")
	f.Add("22f190", "7f2278")
	f.Add("3101FF00", "7F3178")
	f.Add("1003", "7F1021")
	f.Add("22F190", "7F223100")
	f.Add("", "ZZ")
	f.Add("10", "5")
	f.Fuzz(func(t *testing.T, request, response string) {
		req, rerr := decodeHex(request)
		resp, err := decodeHex(response)
		if err != nil || rerr != nil {
			return
		}
		if got, want := encodeHex(resp), strings.ToUpper(response); got != want {
			t.Fatalf("encodeHex(decodeHex(%q)) = %q, want %q", response, got, want)
		}
		v := uds.Match(req, resp)
		if v.Outcome == uds.Negative && (len(resp) != 3 || resp[0] != 0x7F) {
			t.Fatalf("Match(%q, %q) = negative for a response that is not 7F SID NRC", request, response)
		}
		if v.Outcome == uds.Positive && resp[0] != req[0]+0x40 {
			t.Fatalf("Match(%q, %q) = positive without SID + 0x40", request, response)
		}
		_ = describe(resp)
	})
}

// memStream is an in-memory openIsotpStream: what the channel sends arrives
// on sent, what the test puts on recv is received.
type memStream struct {
	grpc.ClientStream
	ctx  context.Context
	sent chan *openobdv1.IsotpMessage
	recv chan *openobdv1.IsotpMessage
	// sending, if set, gets a value when a Send begins.
	sending chan struct{}
	// ended, once closed, is the server's end of the stream: Send returns
	// io.EOF, Recv what is left on recv, then UNAVAILABLE.
	ended chan struct{}
}

func (m *memStream) Context() context.Context { return m.ctx }

func (m *memStream) Send(msg *openobdv1.IsotpMessage) error {
	if m.sending != nil {
		m.sending <- struct{}{}
	}
	select {
	case <-m.ended:
		return io.EOF
	default:
	}
	select {
	case m.sent <- msg:
		return nil
	case <-m.ctx.Done():
		return io.EOF
	}
}

func (m *memStream) Recv() (*openobdv1.IsotpMessage, error) {
	select {
	case msg, ok := <-m.recv:
		if !ok {
			return nil, status.Error(codes.Unavailable, "stream broken")
		}
		return msg, nil
	case <-m.ended:
		select {
		case msg := <-m.recv:
			return msg, nil
		default:
			return nil, status.Error(codes.Unavailable, "stream ended")
		}
	case <-m.ctx.Done():
		return nil, status.FromContextError(m.ctx.Err()).Err()
	}
}

// newMemChannel returns a channel over a memStream, closed at the end of t.
func newMemChannel(t testing.TB, cfg Config) (*IsotpChannel, *memStream) {
	ctx, cancel := context.WithCancel(context.Background())
	m := &memStream{ctx: ctx, sent: make(chan *openobdv1.IsotpMessage), recv: make(chan *openobdv1.IsotpMessage, 16), ended: make(chan struct{})}
	cfg.ClientID, cfg.ClientSecret = "id", "secret"
	cfg.Logger = slog.New(slog.DiscardHandler)
	ch := &openobdv1.IsotpChannel{BusName: "bus0", RequestId: 0x7E0, ResponseId: 0x7E8}
	c := newIsotpChannel(nil, m, cancel, ch, cfg.Logger, cfg.withDefaults())
	t.Cleanup(func() { c.Close() })
	return c, m
}

// closed reports whether c has closed.
func closed(c *IsotpChannel) bool {
	select {
	case <-c.Done():
		return true
	default:
		return false
	}
}

// serve answers each request sent on m with the replies script returns.
func serve(m *memStream, script func(req string) []string) {
	for {
		select {
		case msg := <-m.sent:
			for _, p := range script(msg.GetPayload()) {
				m.recv <- &openobdv1.IsotpMessage{Channel: msg.GetChannel(), Payload: p}
			}
		case <-m.ctx.Done():
			return
		}
	}
}

func TestRequestDropsStrays(t *testing.T) {
	c, m := newMemChannel(t, Config{})
	go serve(m, func(req string) []string {
		return []string{
			"5003",     // answer to another service
			"7F1031",   // negative answer to another service
			"7F223100", // malformed negative answer
			"ZZ",       // not hexadecimal
			"",         // channel control
			"62f19057", // the answer, in lower case
			"7F3E12",   // unsolicited, read by the next request
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	resp, err := c.Request(ctx, []byte{0x22, 0xF1, 0x90})
	if err != nil || encodeHex(resp) != "62F19057" {
		t.Fatalf("Request(22F190) = % X, %v; want 62 F1 90 57", resp, err)
	}
	if got := c.Strays(); got != 4 {
		t.Errorf("Strays() = %d, want 4", got)
	}
	// The next request reads the message left over and drops it, then its
	// own strays.
	resp, err = c.Request(ctx, []byte{0x22, 0xF1, 0x90})
	if err != nil || encodeHex(resp) != "62F19057" {
		t.Fatalf("second Request(22F190) = % X, %v; want 62 F1 90 57", resp, err)
	}
	if got := c.Strays(); got != 9 {
		t.Errorf("Strays() = %d, want 9", got)
	}
}

func TestRequestNegativeResponse(t *testing.T) {
	c, m := newMemChannel(t, Config{})
	go serve(m, func(string) []string { return []string{"7F2231"} })
	resp, err := c.Request(context.Background(), []byte{0x22, 0xFF, 0xFF})
	var nre *NegativeResponseError
	if !errors.As(err, &nre) || nre.SID != uds.ReadDataByIdentifier || nre.NRC != uds.RequestOutOfRange {
		t.Fatalf("Request() error = %v, want a negative response 22/31", err)
	}
	if encodeHex(resp) != "7F2231" {
		t.Errorf("Request() response = % X, want 7F 22 31", resp)
	}
	if !strings.Contains(err.Error(), "requestOutOfRange") {
		t.Errorf("error text %q does not name the NRC", err)
	}
}

func TestRequestResponsePendingRestartsP2Star(t *testing.T) {
	c, m := newMemChannel(t, Config{ResponseTimeout: 60 * time.Millisecond, P2Star: 400 * time.Millisecond})
	// A 0x78 at once, three more 100 ms apart (each gap longer than the
	// response timeout, shorter than P2*), then the result.
	go func() {
		select {
		case <-m.sent:
		case <-m.ctx.Done():
			return
		}
		for i := range 5 {
			payload := "7F3178"
			if i == 4 {
				payload = "7101FF0000"
			}
			if i > 0 {
				time.Sleep(100 * time.Millisecond)
			}
			m.recv <- &openobdv1.IsotpMessage{Payload: payload}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	start := time.Now()
	resp, err := c.Request(ctx, []byte{0x31, 0x01, 0xFF, 0x00})
	if err != nil || encodeHex(resp) != "7101FF0000" {
		t.Fatalf("Request() = % X, %v; want 71 01 FF 00 00", resp, err)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("Request() returned after %v, before the scripted 400ms", d)
	}
}

func TestRequestTimeout(t *testing.T) {
	cfg := Config{ResponseTimeout: 30 * time.Millisecond, P2Star: 30 * time.Millisecond}
	c, m := newMemChannel(t, cfg)
	go serve(m, func(string) []string { return nil })
	_, err := c.Request(context.Background(), []byte{0x22, 0xF1, 0x90})
	var te *TimeoutError
	if !errors.Is(err, ErrTimeout) || !errors.As(err, &te) || te.Pending || encodeHex(te.Request) != "22F190" {
		t.Fatalf("Request() error = %#v, want a *TimeoutError for 22F190", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Request() error %v wraps DeadlineExceeded though ctx has no deadline", err)
	}
	// The request stopped waiting: the channel is closed, so that a late
	// answer cannot be taken for the next request's.
	if !closed(c) {
		t.Fatal("Done() not closed after a request timed out")
	}
	_, err = c.Request(context.Background(), []byte{0x22, 0xF1, 0x90})
	if !errors.Is(err, ErrChannelClosed) || !errors.Is(err, errGaveUp) || KindOf(err) != KindRetryable {
		t.Errorf("Request() after a timeout = %v, want ErrChannelClosed of KindRetryable", err)
	}

	c, m = newMemChannel(t, cfg)
	go serve(m, func(string) []string { return []string{"7F3178"} })
	_, err = c.Request(context.Background(), []byte{0x31, 0x01, 0xFF, 0x00})
	if !errors.As(err, &te) || !te.Pending {
		t.Fatalf("Request() after 0x78 = %v, want a *TimeoutError with Pending", err)
	}
	// The caller's deadline also yields a *TimeoutError, which wraps the
	// context error too.
	c, m = newMemChannel(t, cfg)
	go serve(m, func(string) []string { return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = c.Request(ctx, []byte{0x22, 0xF1, 0x90}, WithResponseTimeout(time.Minute))
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Request() past ctx deadline = %v, want ErrTimeout and DeadlineExceeded", err)
	}
	if !closed(c) {
		t.Error("Done() not closed after a request's context ended its wait")
	}
}

func TestRequestBusyRepeat(t *testing.T) {
	c, m := newMemChannel(t, Config{BusyRetryInterval: 20 * time.Millisecond, ResponseTimeout: time.Second})
	var sends atomic.Int32
	go serve(m, func(string) []string {
		if sends.Add(1) <= 3 {
			return []string{"7F2221"}
		}
		return []string{"62F19001"}
	})
	start := time.Now()
	resp, err := c.Request(context.Background(), []byte{0x22, 0xF1, 0x90})
	if err != nil || encodeHex(resp) != "62F19001" {
		t.Fatalf("Request() = % X, %v; want 62 F1 90 01", resp, err)
	}
	if n := sends.Load(); n != 4 {
		t.Errorf("request sent %d times, want 4", n)
	}
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("Request() took %v, want at least 3 retry intervals (60ms)", d)
	}
	if c.Strays() != 0 {
		t.Errorf("Strays() = %d, want 0", c.Strays())
	}

	// A busy ECU that never recovers: the retries stop within the caller's
	// deadline and the 0x21 answer is returned.
	c2, m2 := newMemChannel(t, Config{BusyRetryInterval: 20 * time.Millisecond})
	go serve(m2, func(string) []string { return []string{"7F2221"} })
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	_, err = c2.Request(ctx, []byte{0x22, 0xF1, 0x90})
	if !errors.Is(err, &NegativeResponseError{NRC: uds.BusyRepeatRequest}) {
		t.Fatalf("Request() to a busy ECU = %v, want NRC 0x21", err)
	}
	// Even when the caller's deadline ends the last wait, the request
	// reports that the ECU was busy.
	c3, m3 := newMemChannel(t, Config{BusyRetryInterval: 20 * time.Millisecond})
	var n atomic.Int32
	go serve(m3, func(string) []string {
		if n.Add(1) == 1 {
			return []string{"7F2221"}
		}
		return nil // the re-sent request gets no answer
	})
	ctx3, cancel3 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel3()
	resp, err = c3.Request(ctx3, []byte{0x22, 0xF1, 0x90})
	if !errors.Is(err, &NegativeResponseError{NRC: uds.BusyRepeatRequest}) || encodeHex(resp) != "7F2221" {
		t.Fatalf("Request() busy until the deadline = % X, %v; want 7F 22 21 and NRC 0x21", resp, err)
	}
}

func TestRequestOneAtATime(t *testing.T) {
	c, m := newMemChannel(t, Config{})
	var inFlight, maxInFlight atomic.Int32
	go func() {
		for {
			select {
			case msg := <-m.sent:
				n := inFlight.Add(1)
				if n > maxInFlight.Load() {
					maxInFlight.Store(n)
				}
				time.Sleep(2 * time.Millisecond)
				inFlight.Add(-1)
				b, _ := decodeHex(msg.GetPayload())
				m.recv <- &openobdv1.IsotpMessage{Payload: encodeHex(append([]byte{b[0] + 0x40}, b[1:]...))}
			case <-m.ctx.Done():
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			req := []byte{0x22, 0xF1, byte(i)}
			resp, err := c.Request(ctx, req)
			if err != nil || len(resp) != 3 || resp[2] != byte(i) {
				t.Errorf("Request(% X) = % X, %v; want its own answer", req, resp, err)
			}
		})
	}
	wg.Wait()
	if n := maxInFlight.Load(); n != 1 {
		t.Errorf("requests in flight at once = %d, want 1", n)
	}
}

func TestRequestRespectsContextWhileQueued(t *testing.T) {
	c, m := newMemChannel(t, Config{ResponseTimeout: time.Minute})
	go serve(m, func(string) []string { return nil }) // never answers
	first, cancelFirst := context.WithCancel(context.Background())
	firstDone := make(chan error, 1)
	go func() {
		_, err := c.Request(first, []byte{0x22, 0xF1, 0x90})
		firstDone <- err
	}()
	time.Sleep(10 * time.Millisecond)
	// The second request waits for its turn and gives up with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Request(ctx, []byte{0x22, 0xF1, 0x90}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("queued Request() = %v, want DeadlineExceeded", err)
	}
	cancelFirst()
	if err := <-firstDone; err != context.Canceled {
		t.Errorf("cancelled Request() = %v, want context.Canceled unchanged", err)
	}
}

func TestSendRespectsContextUnderBackpressure(t *testing.T) {
	c, _ := newMemChannel(t, Config{}) // nobody reads what is sent
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	// The first message is held by the stream's flow control: the send
	// gives up with ctx, and the stuck stream ends the channel.
	if err := c.Send(ctx, []byte{0x3E, 0x80}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send() under backpressure = %v, want DeadlineExceeded", err)
	}
	if !closed(c) {
		t.Fatal("Done() not closed after a send was held past its context")
	}
	_, err := c.Request(context.Background(), []byte{0x22, 0xF1, 0x90})
	if !errors.Is(err, ErrChannelClosed) || KindOf(err) != KindRetryable {
		t.Errorf("Request() after a stuck send = %v, want ErrChannelClosed of KindRetryable (reopen)", err)
	}
	if err := c.Send(context.Background(), nil); err == nil {
		t.Error("Send(empty) = nil, want an error")
	}
}

// TestSendersTakeTurns proves that a Send waiting for a Request's write
// gives up with its own context, without ending the channel.
func TestSendersTakeTurns(t *testing.T) {
	c, m := newMemChannel(t, Config{ResponseTimeout: time.Minute})
	m.sending = make(chan struct{}, 1)
	reqDone := make(chan error, 1)
	go func() {
		_, err := c.Request(context.Background(), []byte{0x22, 0xF1, 0x90})
		reqDone <- err
	}()
	// Nobody reads m.sent yet: once the Request's write has begun, it holds
	// the turn.
	<-m.sending
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.Send(ctx, []byte{0x3E, 0x80}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send() while another write holds the turn = %v, want DeadlineExceeded", err)
	}
	if closed(c) {
		t.Fatal("the channel closed although no write was stuck past its own context")
	}
	msg := <-m.sent
	m.recv <- &openobdv1.IsotpMessage{Channel: msg.GetChannel(), Payload: "62F19041"}
	if err := <-reqDone; err != nil {
		t.Errorf("Request() = %v, want its answer", err)
	}
}

func TestChannelClosedByStream(t *testing.T) {
	c, m := newMemChannel(t, Config{ResponseTimeout: time.Minute})
	go func() {
		<-m.sent
		close(m.recv) // the stream breaks with UNAVAILABLE
	}()
	_, err := c.Request(context.Background(), []byte{0x22, 0xF1, 0x90})
	if !errors.Is(err, ErrChannelClosed) || KindOf(err) != KindRetryable {
		t.Fatalf("Request() on a broken stream = %v, want ErrChannelClosed of KindRetryable", err)
	}
	if !closed(c) {
		t.Error("Done() not closed after the stream broke")
	}
	c.Close()
	if _, err := c.Request(context.Background(), []byte{0x22}); !errors.Is(err, ErrChannelClosed) {
		t.Errorf("Request() after Close = %v, want ErrChannelClosed", err)
	}
}

// TestContextEndsOnlyItsWait proves that a context serving several
// requests closes the channel only when it ends while one of them waits.
func TestContextEndsOnlyItsWait(t *testing.T) {
	c, m := newMemChannel(t, Config{ResponseTimeout: time.Minute})
	var answer atomic.Bool
	answer.Store(true)
	asked := make(chan struct{}, 1) // a request left unanswered
	go serve(m, func(string) []string {
		if answer.Load() {
			return []string{"62F19001"}
		}
		asked <- struct{}{}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	for range 2 {
		if _, err := c.Request(ctx, []byte{0x22, 0xF1, 0x90}); err != nil {
			t.Fatalf("Request() = %v", err)
		}
	}
	cancel() // between requests
	other, cancelOther := context.WithCancel(context.Background())
	defer cancelOther()
	if _, err := c.Request(other, []byte{0x22, 0xF1, 0x90}); err != nil {
		t.Fatalf("Request() with another context after the first ended = %v, want its answer", err)
	}
	if closed(c) {
		t.Fatal("the channel closed when a context ended with no request waiting")
	}
	// other ends while its request waits: the wait ends and so does the
	// channel.
	answer.Store(false)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Request(other, []byte{0x22, 0xF1, 0x90})
		errc <- err
	}()
	<-asked
	cancelOther()
	if err := <-errc; err != context.Canceled {
		t.Errorf("Request() whose context ended while waiting = %v, want context.Canceled", err)
	}
	if !closed(c) {
		t.Error("Done() not closed after a request's context ended its wait")
	}
}

// TestEndedStreamNotSent proves that a request or a send on a stream that
// has ended is reported as not sent, with the stream's status as the cause,
// and that the messages left on the stream are counted as strays.
func TestEndedStreamNotSent(t *testing.T) {
	c, m := newMemChannel(t, Config{ResponseTimeout: time.Minute})
	m.recv <- &openobdv1.IsotpMessage{Payload: "7F3E12"}
	close(m.ended)
	_, err := c.Request(context.Background(), []byte{0x31, 0x01, 0xFF, 0x00})
	if !errors.Is(err, ErrNotSent) || !errors.Is(err, ErrChannelClosed) || KindOf(err) != KindRetryable {
		t.Errorf("Request() on an ended stream = %v, want ErrNotSent and ErrChannelClosed of KindRetryable", err)
	}
	if got := c.Strays(); got != 1 {
		t.Errorf("Strays() = %d, want the message left on the stream", got)
	}
	if !closed(c) {
		t.Error("Done() not closed after the request found the stream ended")
	}

	// A Send finds it out too when no request holds the turn.
	c, m = newMemChannel(t, Config{})
	close(m.ended)
	if err := c.Send(context.Background(), []byte{0x3E, 0x80}); !errors.Is(err, ErrNotSent) || KindOf(err) != KindRetryable {
		t.Errorf("Send() on an ended stream = %v, want ErrNotSent of KindRetryable", err)
	}
	if !closed(c) {
		t.Error("Done() not closed after a send found the stream ended")
	}
}

func TestCloseUnblocksRequest(t *testing.T) {
	c, m := newMemChannel(t, Config{ResponseTimeout: time.Minute})
	go serve(m, func(string) []string { return nil })
	errc := make(chan error, 1)
	go func() {
		_, err := c.Request(context.Background(), []byte{0x22, 0xF1, 0x90})
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	c.Close()
	if err := <-errc; !errors.Is(err, ErrChannelClosed) || !errors.Is(err, ErrClosed) {
		t.Errorf("Request() during Close = %v, want ErrChannelClosed wrapping ErrClosed", err)
	}
}

func TestDescribeHidesSecurityData(t *testing.T) {
	tests := []struct {
		in   []byte
		want string
	}{
		{[]byte{0x22, 0xF1, 0x90}, "22F190"},
		{[]byte{0x27, 0x02, 0xDE, 0xAD, 0xBE, 0xEF}, "2702…"},
		{[]byte{0x67, 0x01, 0x12, 0x34}, "6701…"},
		{[]byte{0x36, 1, 2, 3, 4, 5, 6, 7, 8, 9}, "3601020304050607…"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := describe(tt.in); got != tt.want {
			t.Errorf("describe(% X) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// BenchmarkIsotpRequestInMemory measures the client's own cost of a
// Request round trip over an in-memory stream that echoes a positive
// response (no gRPC, no server).
func BenchmarkIsotpRequestInMemory(b *testing.B) {
	c, m := newMemChannel(b, Config{})
	resp := &openobdv1.IsotpMessage{Payload: "62F19057565A5A5A"}
	go func() {
		for {
			select {
			case <-m.sent:
				m.recv <- resp
			case <-m.ctx.Done():
				return
			}
		}
	}()
	ctx := context.Background()
	req := []byte{0x22, 0xF1, 0x90}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Request(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
}
