package controlplane

import (
	"context"
	"errors"
	"io"
	"iter"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/partner"
)

const defaultTestTimeout = 10 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// Tokens of the test principals.
const (
	viewerToken  = "viewer-token-0123456789"
	runnerToken  = "runner-token-0123456789"
	adminToken   = "admin-token-0123456789"
	unknownToken = "unknown-token-0123456789"
)

const testTokenFile = `# test principals
viewer-token-0123456789 viewer alice
runner-token-0123456789 runner ci-runner

admin-token-0123456789  admin  bob
`

func testTokens(t testing.TB) *Tokens {
	t.Helper()
	tokens, err := LoadTokens(strings.NewReader(testTokenFile))
	if err != nil {
		t.Fatalf("LoadTokens = %v", err)
	}
	return tokens
}

// errStub is what every stubCore method answers, so that a call that passed
// the interceptors ends with NOT_FOUND.
var errStub = orchestrator.ErrNotFound

// stubCore answers every call with errStub and remembers who called.
type stubCore struct {
	mu      sync.Mutex
	callers []string
}

func (c *stubCore) record(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	name := callerName(ctx)
	if p, ok := PrincipalFrom(ctx); !ok || p.Name != name {
		name = "principal mismatch: " + name
	}
	c.callers = append(c.callers, name)
}

// takeCallers returns and forgets the recorded callers.
func (c *stubCore) takeCallers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := c.callers
	c.callers = nil
	return got
}

func (c *stubCore) ListTickets(ctx context.Context, _ partner.TicketState, _ orchestrator.Page) ([]orchestrator.TicketView, string, error) {
	c.record(ctx)
	return nil, "", errStub
}

func (c *stubCore) ListConnectors(ctx context.Context, _ bool, _ orchestrator.Page) ([]orchestrator.ConnectorView, string, error) {
	c.record(ctx)
	return nil, "", errStub
}

func (c *stubCore) StartSession(ctx context.Context, _ orchestrator.StartRequest) (orchestrator.StartResult, error) {
	c.record(ctx)
	return orchestrator.StartResult{}, errStub
}

func (c *stubCore) GetSession(ctx context.Context, _ string) (*session.Record, error) {
	c.record(ctx)
	return nil, errStub
}

func (c *stubCore) ListSessions(ctx context.Context, _ orchestrator.SessionFilter, _ orchestrator.Page) ([]*session.Record, string, error) {
	c.record(ctx)
	return nil, "", errStub
}

func (c *stubCore) WatchSessions(ctx context.Context, _ int64, _ orchestrator.SessionFilter) iter.Seq2[orchestrator.Event, error] {
	c.record(ctx)
	return func(yield func(orchestrator.Event, error) bool) { yield(orchestrator.Event{}, errStub) }
}

func (c *stubCore) AcquireSession(ctx context.Context, _ orchestrator.AcquireRequest) (orchestrator.Acquired, error) {
	c.record(ctx)
	return orchestrator.Acquired{}, errStub
}

func (c *stubCore) ConfigureBus(ctx context.Context, _, _ string, _ []session.Bus) (*session.Record, error) {
	c.record(ctx)
	return nil, errStub
}

func (c *stubCore) ValidateConfigureBus(ctx context.Context, _, _ string, _ []session.Bus) (*session.Record, error) {
	c.record(ctx)
	return nil, errStub
}

func (c *stubCore) OpenChannel(ctx context.Context, _, _ string, _ orchestrator.Channel) (orchestrator.RelayChannel, *session.Record, error) {
	c.record(ctx)
	return nil, nil, errStub
}

func (c *stubCore) Send(ctx context.Context, _, _ string, _ orchestrator.Channel, _ orchestrator.Request) (orchestrator.Response, error) {
	c.record(ctx)
	return orchestrator.Response{}, errStub
}

func (c *stubCore) FinishSession(ctx context.Context, _, _ string, _ session.Result) (*session.Record, error) {
	c.record(ctx)
	return nil, errStub
}

func (c *stubCore) InterruptSession(ctx context.Context, _, _, _ string) (*session.Record, error) {
	c.record(ctx)
	return nil, errStub
}

var _ Core = (*stubCore)(nil)

// startAuthServer serves the control plane with auth over bufconn and returns
// a client connection to it.
func startAuthServer(t *testing.T, core Core, tokens *Tokens) *grpc.ClientConn {
	t.Helper()
	unary, stream := AuthInterceptors(tokens)
	srv := NewServer(NewService(core, Options{}), ServerOptions{
		Unary:  []grpc.UnaryServerInterceptor{unary},
		Stream: []grpc.StreamServerInterceptor{stream},
	})
	srv.SetServing(true)
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
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	)
	if err != nil {
		t.Fatalf("grpc.NewClient = %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

var testChannel = &orchestratorv1.Channel{BusName: "can0", RequestId: 0x7E0, ResponseId: 0x7E8}

// rpcCalls call each OrchestratorService method with a minimal valid
// request and return the call's error; streams are read until their status.
var rpcCalls = map[string]func(context.Context, orchestratorv1.OrchestratorServiceClient) error{
	"ListTickets": func(ctx context.Context, c orchestratorv1.OrchestratorServiceClient) error {
		_, err := c.ListTickets(ctx, &orchestratorv1.ListTicketsRequest{})
		return err
	},
	"ListConnectors": func(ctx context.Context, c orchestratorv1.OrchestratorServiceClient) error {
		_, err := c.ListConnectors(ctx, &orchestratorv1.ListConnectorsRequest{})
		return err
	},
	"StartSession": func(ctx context.Context, c orchestratorv1.OrchestratorServiceClient) error {
		_, err := c.StartSession(ctx, &orchestratorv1.StartSessionRequest{Target: &orchestratorv1.StartSessionRequest_TicketId{TicketId: "t1"}})
		return err
	},
	"GetSession": func(ctx context.Context, c orchestratorv1.OrchestratorServiceClient) error {
		_, err := c.GetSession(ctx, &orchestratorv1.GetSessionRequest{SessionId: "s1"})
		return err
	},
	"ListSessions": func(ctx context.Context, c orchestratorv1.OrchestratorServiceClient) error {
		_, err := c.ListSessions(ctx, &orchestratorv1.ListSessionsRequest{})
		return err
	},
	"WatchSessions": func(ctx context.Context, c orchestratorv1.OrchestratorServiceClient) error {
		stream, err := c.WatchSessions(ctx, &orchestratorv1.WatchSessionsRequest{})
		if err != nil {
			return err
		}
		_, err = stream.Recv()
		return err
	},
	"AcquireSession": func(ctx context.Context, c orchestratorv1.OrchestratorServiceClient) error {
		_, err := c.AcquireSession(ctx, &orchestratorv1.AcquireSessionRequest{Runner: "r1"})
		return err
	},
	"ConfigureBus": func(ctx context.Context, c orchestratorv1.OrchestratorServiceClient) error {
		_, err := c.ConfigureBus(ctx, &orchestratorv1.ConfigureBusRequest{
			SessionId: "s1", LeaseId: "l1",
			Buses: []*orchestratorv1.Bus{{Name: "can0", Definition: &orchestratorv1.Bus_Can{Can: &orchestratorv1.CanBus{PinPlus: 6, PinMinus: 14, BitRate: 500000}}}},
		})
		return err
	},
	"Exchange": func(ctx context.Context, c orchestratorv1.OrchestratorServiceClient) error {
		stream, err := c.Exchange(ctx)
		if err != nil {
			return err
		}
		err = stream.Send(&orchestratorv1.ExchangeRequest{Kind: &orchestratorv1.ExchangeRequest_Open{
			Open: &orchestratorv1.OpenChannel{SessionId: "s1", LeaseId: "l1", Channel: testChannel},
		}})
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		_, err = stream.Recv()
		return err
	},
	"Send": func(ctx context.Context, c orchestratorv1.OrchestratorServiceClient) error {
		_, err := c.Send(ctx, &orchestratorv1.SendRequest{SessionId: "s1", LeaseId: "l1", Channel: testChannel, Payload: []byte{0x22, 0xF1, 0x90}})
		return err
	},
	"FinishSession": func(ctx context.Context, c orchestratorv1.OrchestratorServiceClient) error {
		_, err := c.FinishSession(ctx, &orchestratorv1.FinishSessionRequest{
			SessionId: "s1", LeaseId: "l1",
			Result: &orchestratorv1.FinishResult{Codes: []orchestratorv1.ResultCode{orchestratorv1.ResultCode_RESULT_CODE_SUCCESS}},
		})
		return err
	},
	"InterruptSession": func(ctx context.Context, c orchestratorv1.OrchestratorServiceClient) error {
		_, err := c.InterruptSession(ctx, &orchestratorv1.InterruptSessionRequest{SessionId: "s1", Reason: "test"})
		return err
	},
}

func TestAuthMatrix(t *testing.T) {
	// The least role of each method, written out rather than read from
	// methodRoles so that a change of the table shows up here.
	needs := map[string]Role{
		"ListTickets":      RoleViewer,
		"ListConnectors":   RoleViewer,
		"GetSession":       RoleViewer,
		"ListSessions":     RoleViewer,
		"WatchSessions":    RoleViewer,
		"AcquireSession":   RoleRunner,
		"ConfigureBus":     RoleRunner,
		"Exchange":         RoleRunner,
		"Send":             RoleRunner,
		"FinishSession":    RoleRunner,
		"StartSession":     RoleAdmin,
		"InterruptSession": RoleAdmin,
	}
	if len(needs) != len(rpcCalls) || len(needs) != len(orchestratorv1.OrchestratorService_ServiceDesc.Methods)+len(orchestratorv1.OrchestratorService_ServiceDesc.Streams) {
		t.Fatalf("the matrix covers %d methods and calls %d, the service has %d", len(needs), len(rpcCalls),
			len(orchestratorv1.OrchestratorService_ServiceDesc.Methods)+len(orchestratorv1.OrchestratorService_ServiceDesc.Streams))
	}

	core := &stubCore{}
	client := orchestratorv1.NewOrchestratorServiceClient(startAuthServer(t, core, testTokens(t)))

	callers := []struct {
		name       string
		authHeader string // empty: no header at all
		role       Role   // zero: not authenticated
		principal  string
	}{
		{name: "no token"},
		{name: "malformed header", authHeader: "Bearer" + viewerToken},
		{name: "wrong scheme", authHeader: "Basic " + viewerToken},
		{name: "empty token", authHeader: "Bearer "},
		{name: "unknown token", authHeader: "Bearer " + unknownToken},
		{name: "viewer", authHeader: "Bearer " + viewerToken, role: RoleViewer, principal: "alice"},
		{name: "runner", authHeader: "bearer " + runnerToken, role: RoleRunner, principal: "ci-runner"},
		{name: "admin", authHeader: "Bearer " + adminToken, role: RoleAdmin, principal: "bob"},
	}
	for _, c := range callers {
		for method, call := range rpcCalls {
			t.Run(c.name+"/"+method, func(t *testing.T) {
				ctx := testContext(t)
				if c.authHeader != "" {
					ctx = metadata.AppendToOutgoingContext(ctx, "authorization", c.authHeader)
				}
				err := call(ctx, client)
				got := status.Convert(err)
				callers := core.takeCallers()

				var want codes.Code
				switch {
				case c.role == 0:
					want = codes.Unauthenticated
				case c.role < needs[method]:
					want = codes.PermissionDenied
				default:
					want = codes.NotFound // the stub core's answer
				}
				if got.Code() != want {
					t.Fatalf("%s as %s = %v, want %s", method, c.name, err, want)
				}
				for _, tok := range []string{viewerToken, runnerToken, adminToken, unknownToken} {
					if strings.Contains(got.Message(), tok) {
						t.Errorf("%s as %s: message %q repeats a token", method, c.name, got.Message())
					}
				}
				switch want {
				case codes.NotFound:
					if len(callers) != 1 || callers[0] != c.principal {
						t.Errorf("%s as %s reached the core as %q, want [%s]", method, c.name, callers, c.principal)
					}
				case codes.PermissionDenied:
					for _, s := range []string{"needs role " + needs[method].String(), "has role " + c.role.String()} {
						if !strings.Contains(got.Message(), s) {
							t.Errorf("%s as %s: message %q lacks %q", method, c.name, got.Message(), s)
						}
					}
					fallthrough
				default:
					if len(callers) != 0 {
						t.Errorf("%s as %s reached the core (as %q)", method, c.name, callers)
					}
				}
			})
		}
	}
}

func TestAuthExemptsHealthAndReflection(t *testing.T) {
	conn := startAuthServer(t, &stubCore{}, testTokens(t))
	ctx := testContext(t)

	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("Health.Check without a token = %v, %v; want SERVING", resp.GetStatus(), err)
	}

	// Both reflection versions: v1alpha is still the default of many
	// clients. Their messages are the same on the wire.
	for _, method := range []string{
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
	} {
		stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, method)
		if err != nil {
			t.Fatalf("%s without a token = %v", method, err)
		}
		req := &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}
		if err := stream.SendMsg(req); err != nil {
			t.Fatalf("%s: SendMsg = %v", method, err)
		}
		var list reflectionpb.ServerReflectionResponse
		if err := stream.RecvMsg(&list); err != nil {
			t.Fatalf("%s without a token: RecvMsg = %v", method, err)
		}
		var names []string
		for _, s := range list.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		if !slices.Contains(names, orchestratorv1.OrchestratorService_ServiceDesc.ServiceName) {
			t.Errorf("%s listed %q, want the orchestrator service among them", method, names)
		}
		if err := stream.CloseSend(); err != nil {
			t.Errorf("%s: CloseSend = %v", method, err)
		}
		if err := stream.RecvMsg(&list); !errors.Is(err, io.EOF) {
			t.Errorf("%s: RecvMsg after CloseSend = %v, want EOF", method, err)
		}
	}
}

// fakeTransportStream names the method of a call for grpc.Method.
type fakeTransportStream struct {
	grpc.ServerTransportStream
	method string
}

func (s fakeTransportStream) Method() string { return s.method }

func TestAuthDeniesUnknownMethods(t *testing.T) {
	unary, stream := AuthInterceptors(testTokens(t))
	for _, method := range []string{
		"/orchestrator.v1.OrchestratorService/DropEverything",
		"/orchestrator.v2.OrchestratorService/ListTickets",
		"/other.Service/Method",
	} {
		t.Run(method, func(t *testing.T) {
			ctx := metadata.NewIncomingContext(testContext(t), metadata.Pairs("authorization", "Bearer "+adminToken))
			ctx = grpc.NewContextWithServerTransportStream(ctx, fakeTransportStream{method: method})
			handler := func(context.Context, any) (any, error) {
				t.Errorf("%s reached its handler", method)
				return nil, nil
			}
			_, err := unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, handler)
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("unary %s as admin = %v, want PermissionDenied", method, err)
			}
			streamHandler := func(any, grpc.ServerStream) error {
				t.Errorf("%s reached its stream handler", method)
				return nil
			}
			err = stream(nil, fakeServerStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: method}, streamHandler)
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("stream %s as admin = %v, want PermissionDenied", method, err)
			}
		})
	}
}

type fakeServerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s fakeServerStream) Context() context.Context { return s.ctx }

// The auth middleware lets a service that implements AuthFuncOverride skip
// the AuthFunc; ours must never do that.
func TestServiceDoesNotOverrideAuth(t *testing.T) {
	if _, ok := any(NewService(&stubCore{}, Options{})).(auth.ServiceAuthFuncOverride); ok {
		t.Error("*Service implements auth.ServiceAuthFuncOverride and would bypass token checks")
	}
}

func TestAuthInterceptorsNeedTokens(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("AuthInterceptors(nil) did not panic")
		}
	}()
	AuthInterceptors(nil)
}

func TestLoadTokens(t *testing.T) {
	const secret = "s3cret-token-0123456789"
	tests := []struct {
		name    string
		file    string
		wantErr string
		want    map[string]Principal
	}{
		{
			name: "valid",
			file: "# comment\n\n  " + secret + "\tadmin  bob  \r\n" + viewerToken + " viewer bob\n   # indented comment\n",
			want: map[string]Principal{secret: {"bob", RoleAdmin}, viewerToken: {"bob", RoleViewer}},
		},
		{name: "empty", file: "", wantErr: "no tokens"},
		{name: "only comments", file: "# a\n\n#b\n", wantErr: "no tokens"},
		{name: "short token", file: "# x\nshort-token admin bob\n", wantErr: "line 2: token shorter than 16"},
		{name: "non-ASCII token", file: "tökén-0123456789-abc admin bob\n", wantErr: "line 1: token has a character"},
		{name: "unknown role", file: secret + " root bob\n", wantErr: "line 1: unknown role"},
		{name: "fields swapped", file: "admin " + secret + " bob\n", wantErr: "line 1: token shorter"},
		{name: "role and token swapped", file: "bob-0123456789-abcdef " + secret + " admin\n", wantErr: "line 1: unknown role"},
		{name: "missing name", file: "\n" + secret + " admin\n", wantErr: "line 2: want <token> <role> <name>, got 2 fields"},
		{name: "extra field", file: secret + " admin bob smith\n", wantErr: "line 1: want <token> <role> <name>, got 4 fields"},
		{name: "long name", file: secret + " admin " + strings.Repeat("n", maxIDLen+1) + "\n", wantErr: "line 1: name longer"},
		{name: "duplicate token", file: secret + " admin bob\n" + viewerToken + " viewer alice\n" + secret + " viewer eve\n", wantErr: "line 3: duplicate token"},
		{name: "line too long", file: strings.Repeat("x", 70000) + " admin bob\n", wantErr: "after line 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadTokens(strings.NewReader(tt.file))
			checkTokens(t, got, err, tt.wantErr, tt.want, secret)
		})
	}
}

func TestParseTokensEnv(t *testing.T) {
	const secret = "s3cret-token-0123456789"
	tests := []struct {
		name    string
		env     string
		wantErr string
		want    map[string]Principal
	}{
		{
			name: "valid",
			env:  " " + secret + ":admin:bob , " + runnerToken + " : runner : ci runner,",
			want: map[string]Principal{secret: {"bob", RoleAdmin}, runnerToken: {"ci runner", RoleRunner}},
		},
		{name: "empty", env: "", wantErr: "no tokens"},
		{name: "only separators", env: " , ,", wantErr: "no tokens"},
		{name: "missing name", env: secret + ":admin", wantErr: "entry 1: want token:role:name, got 2 fields"},
		{name: "colon in name", env: secret + ":admin:bob:smith", wantErr: "entry 1: want token:role:name, got 4 fields"},
		{name: "empty name", env: secret + ":admin: ", wantErr: "entry 1: missing name"},
		{name: "short token", env: secret + ":admin:bob,short:viewer:alice", wantErr: "entry 2: token shorter"},
		{name: "unknown role", env: secret + ":owner:bob", wantErr: "entry 1: unknown role"},
		{name: "duplicate", env: secret + ":admin:bob,,," + secret + ":viewer:bob", wantErr: "entry 4: duplicate token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTokensEnv(tt.env)
			checkTokens(t, got, err, tt.wantErr, tt.want, secret)
		})
	}
}

func checkTokens(t *testing.T, got *Tokens, err error, wantErr string, want map[string]Principal, secret string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error = %v, want one containing %q", err, wantErr)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q repeats the token", err)
		}
		if got != nil {
			t.Errorf("got %d tokens with an error", got.Len())
		}
		return
	}
	if err != nil {
		t.Fatalf("error = %v", err)
	}
	if got.Len() != len(want) {
		t.Errorf("Len() = %d, want %d", got.Len(), len(want))
	}
	for tok, p := range want {
		if gotP, ok := got.Lookup(tok); !ok || gotP != p {
			t.Errorf("lookup(token of %s) = %+v, %v; want %+v", p.Name, gotP, ok, p)
		}
	}
	if p, ok := got.Lookup(unknownToken); ok {
		t.Errorf("lookup(unknown) = %+v, want none", p)
	}
}

func TestRoleString(t *testing.T) {
	for _, r := range []Role{RoleViewer, RoleRunner, RoleAdmin} {
		got, err := ParseRole(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRole(%q) = %v, %v; want %v", r.String(), got, err, r)
		}
	}
	if _, err := ParseRole("Admin"); err == nil {
		t.Error(`ParseRole("Admin") = nil error, want one (roles are lower case)`)
	}
}

func FuzzLoadTokens(f *testing.F) {
	f.Add(testTokenFile)
	f.Add("")
	f.Add("# only a comment\n")
	f.Add("short admin bob\n")
	f.Add("0123456789abcdef admin bob\n0123456789abcdef viewer bob\n")
	f.Add("0123456789abcdef\tviewer\talice\r\n")
	f.Add("0123456789abcdef admin bob extra\n")
	f.Add("admin 0123456789abcdef-secret bob\n")
	f.Fuzz(func(t *testing.T, file string) {
		tokens, err := LoadTokens(strings.NewReader(file))
		if err != nil {
			// Errors name lines, never a field of the file that might be a
			// token.
			for _, field := range strings.Fields(file) {
				if len(field) >= minTokenLen && strings.Contains(err.Error(), field) {
					t.Fatalf("LoadTokens error %q repeats %q", err, field)
				}
			}
			return
		}
		if tokens.Len() == 0 {
			t.Fatal("LoadTokens returned no tokens and no error")
		}
		// Every token line is found again with its principal.
		for line := range strings.Lines(file) {
			f := strings.Fields(line)
			if len(f) != 3 || strings.HasPrefix(f[0], "#") {
				continue
			}
			p, ok := tokens.Lookup(f[0])
			if !ok || p.Role.String() != f[1] || p.Name != f[2] {
				t.Fatalf("lookup(line %q) = %+v, %v", line, p, ok)
			}
		}
	})
}
