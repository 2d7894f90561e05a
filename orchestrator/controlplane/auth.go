package controlplane

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
)

// Role is what a bearer token allows. Each role includes the ones below it:
// viewer < runner < admin < replica.
type Role int

// The roles, weakest first.
const (
	// RoleViewer reads and watches: tickets, connectors, sessions.
	RoleViewer Role = iota + 1
	// RoleRunner is a viewer that also leases sessions and drives them:
	// AcquireSession, ConfigureBus, Exchange, Send, FinishSession.
	RoleRunner
	// RoleAdmin may do everything, including StartSession and
	// InterruptSession.
	RoleAdmin
	// RoleReplica is another replica of the same cluster. It may call
	// everything, and it alone may forward a call on behalf of a caller
	// (whose role the forwarding replica checked) by naming that caller in
	// the x-obdorch-forwarded-for header.
	RoleReplica
)

// String returns the role's name as written in token files.
func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleRunner:
		return "runner"
	case RoleAdmin:
		return "admin"
	case RoleReplica:
		return "replica"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// ParseRole parses "viewer", "runner", "admin" or "replica".
func ParseRole(s string) (Role, error) {
	for _, r := range []Role{RoleViewer, RoleRunner, RoleAdmin, RoleReplica} {
		if s == r.String() {
			return r, nil
		}
	}
	return 0, fmt.Errorf("unknown role %q (want viewer, runner, admin or replica)", s)
}

// methodRoles is the least role each OrchestratorService method needs. A
// method missing here is refused to everyone.
var methodRoles = map[string]Role{
	orchestratorv1.OrchestratorService_ListTickets_FullMethodName:      RoleViewer,
	orchestratorv1.OrchestratorService_ListConnectors_FullMethodName:   RoleViewer,
	orchestratorv1.OrchestratorService_GetSession_FullMethodName:       RoleViewer,
	orchestratorv1.OrchestratorService_ListSessions_FullMethodName:     RoleViewer,
	orchestratorv1.OrchestratorService_WatchSessions_FullMethodName:    RoleViewer,
	orchestratorv1.OrchestratorService_AcquireSession_FullMethodName:   RoleRunner,
	orchestratorv1.OrchestratorService_ConfigureBus_FullMethodName:     RoleRunner,
	orchestratorv1.OrchestratorService_Exchange_FullMethodName:         RoleRunner,
	orchestratorv1.OrchestratorService_Send_FullMethodName:             RoleRunner,
	orchestratorv1.OrchestratorService_FinishSession_FullMethodName:    RoleRunner,
	orchestratorv1.OrchestratorService_StartSession_FullMethodName:     RoleAdmin,
	orchestratorv1.OrchestratorService_InterruptSession_FullMethodName: RoleAdmin,
}

// exemptServices need no token: load balancers probe health without
// credentials, and grpcurl's list and describe must work out of the box.
// Reflection reveals only the public schema, which ships in proto/ anyway.
var exemptServices = map[string]bool{
	healthpb.Health_ServiceDesc.ServiceName:               true,
	reflectionpb.ServerReflection_ServiceDesc.ServiceName: true,
	// The older reflection version still used by many clients; named
	// literally because its Go package is deprecated.
	"grpc.reflection.v1alpha.ServerReflection": true,
}

// minTokenLen is the shortest token accepted, so that tokens cannot be
// guessed.
const minTokenLen = 16

// Principal is an authenticated caller.
type Principal struct {
	// Name identifies the caller in session histories and logs.
	Name string
	// Role is what the caller may do.
	Role Role
}

// Tokens maps bearer tokens to principals. Only the SHA-256 digests of the
// tokens are kept: a presented token is hashed and looked up by its digest,
// so the lookup time does not depend on how much of a real token the caller
// has guessed, and no token stays in memory in clear.
type Tokens struct {
	byDigest map[[sha256.Size]byte]Principal
}

// Len returns the number of tokens.
func (t *Tokens) Len() int { return len(t.byDigest) }

// Lookup returns the principal of a presented token.
func (t *Tokens) Lookup(token string) (Principal, bool) {
	p, ok := t.byDigest[sha256.Sum256([]byte(token))]
	return p, ok
}

// add validates and records one token. Its errors never quote the token or
// any field that might be one (a line with its fields out of order).
func (t *Tokens) add(token, role, name string) error {
	if len(token) < minTokenLen {
		return fmt.Errorf("token shorter than %d characters", minTokenLen)
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c > '~' {
			return errors.New("token has a character outside printable ASCII")
		}
	}
	r, err := ParseRole(role)
	if err != nil {
		return errors.New("unknown role in the second field (want viewer, runner, admin or replica)")
	}
	switch {
	case name == "":
		return errors.New("missing name")
	case len(name) > maxIDLen:
		return fmt.Errorf("name longer than %d characters", maxIDLen)
	}
	d := sha256.Sum256([]byte(token))
	if _, dup := t.byDigest[d]; dup {
		return errors.New("duplicate token")
	}
	t.byDigest[d] = Principal{Name: name, Role: r}
	return nil
}

// AddReplicaToken accepts token as the token of role replica, named
// "replica": the shared replica token every replica of a cluster presents to
// the others when it forwards a call.
func (t *Tokens) AddReplicaToken(token string) error {
	if err := t.add(token, RoleReplica.String(), "replica"); err != nil {
		return fmt.Errorf("replica token: %w", err)
	}
	return nil
}

// NewTokens returns an empty token set, to fill with AddReplicaToken.
func NewTokens() *Tokens { return &Tokens{byDigest: map[[sha256.Size]byte]Principal{}} }

// LoadTokens reads a token file: one token per line as
//
//	<token> <role> <name>
//
// separated by blanks, where role is viewer, runner, admin or replica and name is
// recorded as the actor of what the caller does. Blank lines and lines
// starting with # are ignored. Tokens are at least 16 printable ASCII
// characters, each used once; a name may have several tokens (rotation).
// Errors name the line, never the token.
func LoadTokens(r io.Reader) (*Tokens, error) {
	t := &Tokens{byDigest: map[[sha256.Size]byte]Principal{}}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Fields(text)
		if len(f) != 3 {
			return nil, fmt.Errorf("tokens: line %d: want <token> <role> <name>, got %d fields", line, len(f))
		}
		if err := t.add(f[0], f[1], f[2]); err != nil {
			return nil, fmt.Errorf("tokens: line %d: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokens: after line %d: %w", line, err)
	}
	if t.Len() == 0 {
		return nil, errors.New("tokens: no tokens")
	}
	return t, nil
}

// ParseTokensEnv parses the environment form of a token list:
//
//	token:role:name,token:role:name
//
// Blanks around entries and fields are ignored, and so are empty entries.
// Tokens and names may not contain ':' or ','. The rules of LoadTokens
// apply; errors name the entry (counting from 1), never the token.
func ParseTokensEnv(s string) (*Tokens, error) {
	t := &Tokens{byDigest: map[[sha256.Size]byte]Principal{}}
	for i, entry := range strings.Split(s, ",") {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		f := strings.Split(entry, ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("tokens: entry %d: want token:role:name, got %d fields", i+1, len(f))
		}
		if err := t.add(strings.TrimSpace(f[0]), strings.TrimSpace(f[1]), strings.TrimSpace(f[2])); err != nil {
			return nil, fmt.Errorf("tokens: entry %d: %w", i+1, err)
		}
	}
	if t.Len() == 0 {
		return nil, errors.New("tokens: no tokens")
	}
	return t, nil
}

type principalKey struct{}

// PrincipalFrom returns the caller authenticated by the auth interceptors.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// AuthInterceptors authenticate each call by its "authorization: Bearer
// <token>" header and check that the token's role allows the method:
//
//   - viewer: ListTickets, ListConnectors, GetSession, ListSessions,
//     WatchSessions;
//   - runner: the viewer's methods and AcquireSession, ConfigureBus,
//     Exchange, Send, FinishSession;
//   - admin: all of them, including StartSession and InterruptSession;
//   - replica: all of them, and only a replica may name the caller it
//     forwards a call for (see ForwardInterceptors).
//
// A missing, malformed or unknown token is UNAUTHENTICATED (the message never
// repeats the token); a role too weak for the method, or a method not in the
// table above, is PERMISSION_DENIED naming the role needed and the role held.
// gRPC health and server reflection need no token: load balancers must probe
// health, grpcurl's list must work, and reflection reveals only the public
// schema. On success, handlers see the caller's name through WithCaller and
// the principal through PrincipalFrom.
//
// Install both in ServerOptions.Unary and ServerOptions.Stream. t must not be
// nil: to serve without authentication, install no auth interceptor at all.
// Never hand a nil *Tokens on behind an interface.
func AuthInterceptors(t *Tokens) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	if t == nil || t.Len() == 0 {
		panic("controlplane: AuthInterceptors needs tokens; without authentication install no auth interceptor")
	}
	return auth.UnaryServerInterceptor(t.authorize), auth.StreamServerInterceptor(t.authorize)
}

// authorize is the auth.AuthFunc of AuthInterceptors.
func (t *Tokens) authorize(ctx context.Context) (context.Context, error) {
	method, ok := grpc.Method(ctx)
	if !ok {
		return nil, status.Error(codes.PermissionDenied, "unknown method")
	}
	if exemptServices[serviceOf(method)] {
		return ctx, nil
	}
	token, err := auth.AuthFromMD(ctx, "bearer")
	if err != nil {
		return nil, err
	}
	p, ok := t.Lookup(token)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "unknown bearer token")
	}
	need, ok := methodRoles[method]
	if !ok {
		return nil, status.Errorf(codes.PermissionDenied, "%s is not open to any role", method)
	}
	if p.Role < need {
		return nil, status.Errorf(codes.PermissionDenied, "%s needs role %s; caller %q has role %s", method, need, p.Name, p.Role)
	}
	return WithCaller(context.WithValue(ctx, principalKey{}, p), p.Name), nil
}

// serviceOf returns the service of a full method name "/service/method".
func serviceOf(fullMethod string) string {
	s, _, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	return s
}
