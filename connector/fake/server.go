package fake

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

// State is the state of an openOBD session, as the string openOBD uses.
type State string

// The session states of openOBD.
const (
	StateAvailable   State = "available"   // created, waiting for authenticate()
	StateActive      State = "active"      // authenticated
	StateInterrupted State = "interrupted" // stopped by interruptSession or the Partner API
	StateFinished    State = "finished"    // ended by session/finish
	StateFailed      State = "failed"      // stopped because of an error
)

// Live reports whether the session still counts against its ticket and
// connector (available or active).
func (s State) Live() bool { return s == StateAvailable || s == StateActive }

// CreatedAtLayout is the layout of SessionInfo.created_at.
const CreatedAtLayout = "2006-01-02T15:04:05.000-0700"

// Options configures a Server. Zero durations take the documented defaults.
type Options struct {
	// ClientID and ClientSecret are the Partner API credentials that
	// getSessionControllerToken accepts. Required.
	ClientID, ClientSecret string
	// Directory resolves tickets and connectors. Required.
	Directory Directory
	// Endpoint is SessionInfo.grpc_endpoint. When empty, Serve and Listen set
	// it to the address they serve on.
	Endpoint string

	ControllerTokenValidity time.Duration // default 90 min
	TokenRotation           time.Duration // openSessionTokenStream period; default 2 min
	TokenValidity           time.Duration // life of each session token; default 5 min
	Retention               time.Duration // how long ended sessions stay visible; default 2 min
	InfoPeriod              time.Duration // openConnectorInformationStream period; default 1 s

	// InterruptCode is the status code with which the open streams of an
	// interrupted session end; default codes.Canceled.
	InterruptCode codes.Code

	// ECUs is the bus layout of every simulated vehicle; default DefaultECUs().
	ECUs []ECUConfig
	// RoutinePending is how many 0x78 answers routine 0xFF00 sends before its
	// result, spaced by RoutinePendingSpacing; defaults 3 and 200 ms. The
	// spacing also separates the 0x78 answers of an ECU fault.
	RoutinePending        int
	RoutinePendingSpacing time.Duration
	// BusTiming delays ISO-TP answers by the time their CAN frames take on the
	// configured bit rate (about 0.25 ms per frame at 500 kbit/s).
	BusTiming bool

	// Now is the clock for token expiry, retention, created_at and the ECUs'
	// session timer; default time.Now. Stream periods use real timers.
	Now func() time.Time
	// Logger receives state changes and faults; default discards.
	Logger *slog.Logger
	// OnSessionChange, when set, is called after every session state change,
	// without locks held, from the goroutine that caused it.
	OnSessionChange func(Session)
}

// Session is the view of one openOBD session for tests and for the Partner
// API adapter.
type Session struct {
	ID           string
	State        State
	CreatedAt    time.Time
	EndedAt      time.Time // zero while the session is live
	GRPCEndpoint string
	// AuthenticationToken is the one-time token, set only while available.
	AuthenticationToken string
	TicketID            string // empty for sessions started on a connector
	TicketNumber        string
	ConnectorID         string
	ConnectorName       string
	Reason              string // why the session failed or was interrupted
}

// Server is the fake openOBD service. It is safe for concurrent use.
//
// Locks: Server.mu guards the server's tables (tokens, sessions, connectors)
// and the fields of session and connector that say so; callsMu the call
// counts; Faults.mu the fault settings; Vehicle.mu one vehicle's ECUs. Each
// is a leaf: no code takes one of them while holding another, so there is no
// lock order to keep. The messages of an ISO-TP stream take neither
// Server.mu nor Faults.mu: the stream is admitted once when it opens, and
// each message reads its session's buses, its connector's link and vehicle
// and the fault settings through atomic pointers, so sessions do not wait
// for each other. Only Vehicle.mu of the session's own connector is taken
// per message, and Faults.mu while an ECU fault is set (its counters count
// down per request).
type Server struct {
	opts   Options
	log    *slog.Logger
	faults *Faults

	closing   chan struct{}
	closeOnce sync.Once

	callsMu sync.Mutex
	calls   map[string]int // guarded by callsMu

	mu               sync.Mutex
	endpoint         string
	controllerTokens map[string]time.Time   // token -> expiry
	sessions         map[string]*session    // by id
	authTokens       map[string]*session    // one-time token -> session
	sessionTokens    map[string]*tokenEntry // session token -> entry
	issued           []string               // recent tokens, for leak checks
	connectors       map[string]*connector  // by connector key
	lastSweep        time.Time
}

type tokenEntry struct {
	sess    *session
	expires time.Time
}

// session is one openOBD session. id, target, conn, createdAt, authToken,
// ctx and cancel are set when it starts and never change; the other fields
// are guarded by Server.mu, except buses, which is stored with Server.mu held
// and loaded without it.
type session struct {
	id        string
	target    Target
	conn      *connector
	state     State
	reason    string
	createdAt time.Time
	endedAt   time.Time
	authToken string
	// buses is the configuration of the last configureBus stream; the map
	// is never modified once stored.
	buses atomic.Pointer[busMap]

	// ctx ends with the session; gen is its child that DropStreams replaces.
	// Streams of the session end when gen ends, with its cause as status.
	ctx       context.Context
	cancel    context.CancelCauseFunc
	gen       context.Context
	genCancel context.CancelCauseFunc
}

// busMap holds configured buses by name.
type busMap = map[string]*openobdv1.BusConfiguration

// connector is the state of one connector. key is fixed and name guarded by
// Server.mu; vehicle and link are replaced with Server.mu held (which orders
// their writers) and loaded without it.
type connector struct {
	key, name string
	vehicle   atomic.Pointer[Vehicle]
	link      atomic.Pointer[link]
}

// link is whether a connector is on line, and since when; never modified
// once stored.
type link struct {
	connected bool
	since     time.Time
}

// New validates opts and returns a Server. It starts no goroutines; retention
// and token expiry are evaluated against Options.Now when state is read.
func New(opts Options) (*Server, error) {
	if opts.ClientID == "" || opts.ClientSecret == "" {
		return nil, errors.New("fake: ClientID and ClientSecret are required")
	}
	if opts.Directory == nil {
		return nil, errors.New("fake: Directory is required")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"ControllerTokenValidity", &opts.ControllerTokenValidity, 90 * time.Minute},
		{"TokenRotation", &opts.TokenRotation, 2 * time.Minute},
		{"TokenValidity", &opts.TokenValidity, 5 * time.Minute},
		{"Retention", &opts.Retention, 2 * time.Minute},
		{"InfoPeriod", &opts.InfoPeriod, time.Second},
		{"RoutinePendingSpacing", &opts.RoutinePendingSpacing, 200 * time.Millisecond},
	} {
		if *d.v < 0 {
			return nil, fmt.Errorf("fake: %s must not be negative", d.name)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if opts.RoutinePending < 0 {
		return nil, errors.New("fake: RoutinePending must not be negative")
	}
	if opts.InterruptCode == codes.OK {
		opts.InterruptCode = codes.Canceled
	}
	if opts.InterruptCode > codes.Unauthenticated {
		return nil, fmt.Errorf("fake: InterruptCode %d is not a gRPC status code", opts.InterruptCode)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.ECUs = slices.Clone(opts.ECUs)
	s := &Server{
		opts:             opts,
		log:              opts.Logger,
		closing:          make(chan struct{}),
		endpoint:         opts.Endpoint,
		calls:            make(map[string]int),
		controllerTokens: make(map[string]time.Time),
		sessions:         make(map[string]*session),
		authTokens:       make(map[string]*session),
		sessionTokens:    make(map[string]*tokenEntry),
		connectors:       make(map[string]*connector),
	}
	s.faults = &Faults{s: s, ecu: make(map[ecuKey]*ECUFault)}
	s.faults.cur.Store(&faultSettings{})
	return s, nil
}

// Register registers the openOBD services on r. Services that the fake does
// not simulate (raw CAN, K-line, user interface) answer UNIMPLEMENTED.
func (s *Server) Register(r grpc.ServiceRegistrar) {
	openobdv1.RegisterSessionControllerServer(r, &controllerService{s: s})
	openobdv1.RegisterSessionServer(r, &sessionService{s: s})
	openobdv1.RegisterConfigServer(r, &configService{s: s})
	openobdv1.RegisterCanServer(r, &canService{s: s})
	openobdv1.RegisterKlineServer(r, &klineService{s: s})
	openobdv1.RegisterConnectionMonitorServer(r, &monitorService{s: s})
	openobdv1.RegisterUserInterfaceServer(r, &userInterfaceService{s: s})
}

// Serve serves the fake on lis with a new gRPC server until ctx is done, then
// ends all streams, stops gracefully (forcibly after 5 s) and returns nil. If
// Options.Endpoint was empty, the listener's address becomes the endpoint.
// The Server is closed when Serve returns.
func (s *Server) Serve(ctx context.Context, lis net.Listener, opts ...grpc.ServerOption) error {
	s.mu.Lock()
	if s.endpoint == "" {
		s.endpoint = lis.Addr().String()
	}
	s.mu.Unlock()

	gs := grpc.NewServer(opts...)
	s.Register(gs)
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()

	select {
	case err := <-errc:
		s.Close()
		gs.Stop()
		return err
	case <-ctx.Done():
	}
	s.Close()
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(stopped)
	}()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-stopped:
	case <-t.C:
		gs.Stop()
		<-stopped
	}
	<-errc
	return nil
}

// Close ends every open stream with UNAVAILABLE and refuses further calls. It
// does not stop a gRPC server given to Register. It is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, sess := range s.sessions {
			sess.cancel(errShuttingDown)
		}
	})
}

// Endpoint returns the grpc_endpoint given to sessions.
func (s *Server) Endpoint() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endpoint
}

// Faults returns the run-time fault controls.
func (s *Server) Faults() *Faults { return s.faults }

// Calls returns how often each method was called, keyed by full method name
// (e.g. openobdv1.Session_Authenticate_FullMethodName), failed calls
// included.
func (s *Server) Calls() map[string]int {
	s.callsMu.Lock()
	defer s.callsMu.Unlock()
	return maps.Clone(s.calls)
}

// Sessions returns the sessions the fake still knows, oldest first.
func (s *Server) Sessions() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	s.sweepLocked(now, true)
	out := make([]Session, 0, len(s.sessions))
	for _, sess := range s.sortedLocked(now) {
		out = append(out, s.viewLocked(sess))
	}
	return out
}

// Session returns one session by id.
func (s *Server) Session(id string) (Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.lookupLocked(id, s.opts.Now())
	if sess == nil {
		return Session{}, false
	}
	return s.viewLocked(sess), true
}

// InterruptSession moves an available or active session to interrupted and
// ends its streams, like sessionController/interruptSession and the Partner
// API. It returns ErrSessionNotFound or ErrSessionNotLive otherwise.
func (s *Server) InterruptSession(id string) (Session, error) {
	return s.end(id, StateInterrupted, "interrupted through the API")
}

// FailSession moves an available or active session to failed with reason and
// ends its streams.
func (s *Server) FailSession(id, reason string) (Session, error) {
	if reason == "" {
		reason = "failed by a fault"
	}
	return s.end(id, StateFailed, reason)
}

func (s *Server) end(id string, state State, reason string) (Session, error) {
	s.mu.Lock()
	sess := s.lookupLocked(id, s.opts.Now())
	if sess == nil {
		s.mu.Unlock()
		return Session{}, ErrSessionNotFound
	}
	if !sess.state.Live() {
		v := s.viewLocked(sess)
		s.mu.Unlock()
		return v, fmt.Errorf("%w (state: %s)", ErrSessionNotLive, sess.state)
	}
	s.endLocked(sess, state, reason)
	v := s.viewLocked(sess)
	s.mu.Unlock()
	s.changed(v)
	return v, nil
}

// endLocked moves a live session to a final state and ends its streams.
func (s *Server) endLocked(sess *session, state State, reason string) {
	sess.state = state
	sess.reason = reason
	sess.endedAt = s.opts.Now()
	sess.cancel(endError(state, s.opts.InterruptCode))
}

// changed logs a state change and calls the observer; the caller holds no lock.
func (s *Server) changed(v Session) {
	s.log.Info("openOBD session state changed", "session_id", v.ID, "state", string(v.State),
		"ticket_id", v.TicketID, "connector_id", v.ConnectorID, "reason", v.Reason)
	if s.opts.OnSessionChange != nil {
		s.opts.OnSessionChange(v)
	}
}

func (s *Server) viewLocked(sess *session) Session {
	v := Session{
		ID:            sess.id,
		State:         sess.state,
		CreatedAt:     sess.createdAt,
		EndedAt:       sess.endedAt,
		GRPCEndpoint:  s.endpoint,
		TicketID:      sess.target.TicketID,
		TicketNumber:  sess.target.TicketNumber,
		ConnectorID:   sess.target.ConnectorID,
		ConnectorName: sess.target.ConnectorName,
		Reason:        sess.reason,
	}
	if sess.state == StateAvailable {
		v.AuthenticationToken = sess.authToken
	}
	return v
}

func (s *Server) infoLocked(sess *session) *openobdv1.SessionInfo {
	return sessionInfo(s.viewLocked(sess))
}

func sessionInfo(v Session) *openobdv1.SessionInfo {
	return &openobdv1.SessionInfo{
		Id:                  v.ID,
		State:               string(v.State),
		CreatedAt:           v.CreatedAt.UTC().Format(CreatedAtLayout),
		GrpcEndpoint:        v.GRPCEndpoint,
		AuthenticationToken: v.AuthenticationToken,
	}
}

// forgotten reports whether an ended session is past its retention.
func (s *Server) forgotten(sess *session, now time.Time) bool {
	return !sess.state.Live() && now.Sub(sess.endedAt) >= s.opts.Retention
}

func (s *Server) lookupLocked(id string, now time.Time) *session {
	sess := s.sessions[id]
	if sess == nil || s.forgotten(sess, now) {
		return nil
	}
	return sess
}

func (s *Server) sortedLocked(now time.Time) []*session {
	out := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		if !s.forgotten(sess, now) {
			out = append(out, sess)
		}
	}
	slices.SortFunc(out, func(a, b *session) int {
		if c := a.createdAt.Compare(b.createdAt); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	return out
}

// sweepLocked drops forgotten sessions and expired tokens. Unless forced it
// runs at most once per second of the clock, because lookups already filter
// what it removes.
func (s *Server) sweepLocked(now time.Time, force bool) {
	if !force && now.Sub(s.lastSweep) < time.Second && !now.Before(s.lastSweep) {
		return
	}
	s.lastSweep = now
	for id, sess := range s.sessions {
		if s.forgotten(sess, now) {
			delete(s.sessions, id)
			delete(s.authTokens, sess.authToken)
		}
	}
	for tok, e := range s.sessionTokens {
		if !now.Before(e.expires) || s.sessions[e.sess.id] != e.sess {
			delete(s.sessionTokens, tok)
		}
	}
	for tok, exp := range s.controllerTokens {
		if !now.Before(exp) {
			delete(s.controllerTokens, tok)
		}
	}
}

// connectorLocked returns the state of the connector of t, creating it (and
// a new vehicle when the VIN changed) as needed.
func (s *Server) connectorLocked(t Target, now time.Time) *connector {
	key := connectorKey(t)
	c := s.connectors[key]
	if c == nil {
		c = &connector{key: key}
		c.link.Store(&link{connected: true, since: now})
		s.connectors[key] = c
	}
	if t.ConnectorName != "" {
		c.name = t.ConnectorName
	}
	vin := t.VIN
	if vin == "" {
		vin = DefaultVIN
	}
	if v := c.vehicle.Load(); v == nil || v.VIN() != vin {
		c.vehicle.Store(NewVehicle(VehicleOptions{
			VIN:            vin,
			ECUs:           s.opts.ECUs,
			PendingCount:   s.opts.RoutinePending,
			PendingSpacing: s.opts.RoutinePendingSpacing,
		}))
	}
	return c
}

func connectorKey(t Target) string {
	if t.ConnectorID != "" {
		return t.ConnectorID
	}
	return t.ConnectorName
}

// Vehicle returns the simulated vehicle behind a connector (by id or name),
// for tests that inspect ECU state; false until a session was started on it.
func (s *Server) Vehicle(connectorIDOrName string) (*Vehicle, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.connectors {
		if c.key == connectorIDOrName || c.name == connectorIDOrName {
			return c.vehicle.Load(), true
		}
	}
	return nil, false
}

// enter is the prologue of every RPC: it counts the call and applies the
// hang and latency faults.
func (s *Server) enter(ctx context.Context, method string) error {
	s.callsMu.Lock()
	s.calls[method]++
	s.callsMu.Unlock()
	select {
	case <-s.closing:
		return errShuttingDown
	default:
	}
	if err := s.faults.waitHang(ctx, s.closing); err != nil {
		return err
	}
	if err := s.faults.takeCallFailure(method); err != nil {
		return err
	}
	return sleep(ctx, s.closing, s.faults.settings().callLat)
}

// sleep waits d, or returns the status for ctx or a closing server.
func sleep(ctx context.Context, closing <-chan struct{}, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return streamErr(ctx)
	case <-closing:
		return errShuttingDown
	}
}

// bearer extracts the token of the "authorization: Bearer <token>" header.
func bearer(ctx context.Context) (string, bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if len(v) > len("Bearer ") && strings.EqualFold(v[:len("Bearer ")], "Bearer ") {
			return strings.TrimSpace(v[len("Bearer "):]), true
		}
	}
	return "", false
}

// controllerAuth checks the session-controller token of a controller call.
func (s *Server) controllerAuth(ctx context.Context) error {
	tok, ok := bearer(ctx)
	if !ok {
		return errMissingToken
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.controllerTokens[tok]
	if !ok {
		return errInvalidToken
	}
	if !s.opts.Now().Before(exp) {
		return errExpiredToken
	}
	return nil
}

// sessionAuth resolves the session of a call on the session endpoint (other
// than authenticate) and checks that it may be made.
func (s *Server) sessionAuth(ctx context.Context) (*session, error) {
	tok, ok := bearer(ctx)
	if !ok {
		return nil, errMissingToken
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	if sess := s.authTokens[tok]; sess != nil && !s.forgotten(sess, now) {
		switch {
		case sess.state == StateAvailable:
			return nil, errOnlyAuthenticate
		case sess.state.Live():
			return nil, errInvalidToken // the one-time token was used
		default:
			return nil, errNotActive(sess.state)
		}
	}
	e := s.sessionTokens[tok]
	if e == nil || s.forgotten(e.sess, now) {
		return nil, errInvalidToken
	}
	if !now.Before(e.expires) {
		return nil, errExpiredToken
	}
	if e.sess.state != StateActive {
		return nil, errNotActive(e.sess.state)
	}
	return e.sess, nil
}

// issueTokenLocked creates a session token valid for TokenValidity.
func (s *Server) issueTokenLocked(sess *session, now time.Time) string {
	tok := rand.Text()
	s.rememberLocked(tok)
	s.sessionTokens[tok] = &tokenEntry{sess: sess, expires: now.Add(s.opts.TokenValidity)}
	return tok
}

// maxIssued bounds the tokens IssuedTokens remembers.
const maxIssued = 10000

func (s *Server) rememberLocked(tok string) {
	if len(s.issued) >= maxIssued {
		s.issued = s.issued[1:]
	}
	s.issued = append(s.issued, tok)
}

// IssuedTokens returns the most recent controller, authentication and
// session tokens the fake has issued (up to 10,000), so tests can check that
// none of them leaks into logs or responses.
func (s *Server) IssuedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

// openStream admits a session-scoped stream: the call passes the faults and
// the session token check, and gets the stream's context (see
// streamContext) and its release function.
func (s *Server) openStream(parent context.Context, method string) (*session, context.Context, func(), error) {
	if err := s.enter(parent, method); err != nil {
		return nil, nil, nil, err
	}
	sess, err := s.sessionAuth(parent)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, done := s.streamContext(parent, sess)
	return sess, ctx, done, nil
}

// streamContext derives the context of a stream of sess: it ends when the
// client goes away, when the session ends and when its streams are dropped;
// streamErr gives the status to return.
func (s *Server) streamContext(parent context.Context, sess *session) (context.Context, func()) {
	s.mu.Lock()
	gen := sess.gen
	s.mu.Unlock()
	ctx, cancel := context.WithCancelCause(parent)
	stop := context.AfterFunc(gen, func() { cancel(context.Cause(gen)) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0F | 0x40
	b[8] = b[8]&0x3F | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
