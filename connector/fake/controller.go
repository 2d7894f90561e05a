package fake

import (
	"context"
	"crypto/rand"
	"crypto/subtle"

	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

// controllerService implements openOBD.v1.sessionController.
type controllerService struct {
	openobdv1.UnsafeSessionControllerServer
	s *Server
}

var _ openobdv1.SessionControllerServer = (*controllerService)(nil)

func (c *controllerService) GetSessionControllerToken(ctx context.Context, req *openobdv1.Authenticate) (*openobdv1.SessionControllerToken, error) {
	s := c.s
	if err := s.enter(ctx, openobdv1.SessionController_GetSessionControllerToken_FullMethodName); err != nil {
		return nil, err
	}
	idOK := subtle.ConstantTimeCompare([]byte(req.GetClientId()), []byte(s.opts.ClientID)) == 1
	secretOK := subtle.ConstantTimeCompare([]byte(req.GetClientSecret()), []byte(s.opts.ClientSecret)) == 1
	if !idOK || !secretOK {
		return nil, errInvalidClient
	}
	tok := rand.Text()
	s.mu.Lock()
	now := s.opts.Now()
	s.sweepLocked(now, false)
	s.controllerTokens[tok] = now.Add(s.opts.ControllerTokenValidity)
	s.rememberLocked(tok)
	s.mu.Unlock()
	return &openobdv1.SessionControllerToken{Value: tok}, nil
}

func (c *controllerService) StartSessionOnTicket(ctx context.Context, req *openobdv1.TicketId) (*openobdv1.SessionInfo, error) {
	s := c.s
	if err := s.enter(ctx, openobdv1.SessionController_StartSessionOnTicket_FullMethodName); err != nil {
		return nil, err
	}
	if err := s.controllerAuth(ctx); err != nil {
		return nil, err
	}
	t, ok := s.opts.Directory.LookupTicket(req.GetValue())
	if !ok {
		return nil, errNoTicket(req.GetValue())
	}
	if connectorKey(t) == "" {
		return nil, errTicketWithoutConnector(req.GetValue())
	}
	return s.start(ctx, t)
}

func (c *controllerService) StartSessionOnConnector(ctx context.Context, req *openobdv1.ConnectorId) (*openobdv1.SessionInfo, error) {
	s := c.s
	if err := s.enter(ctx, openobdv1.SessionController_StartSessionOnConnector_FullMethodName); err != nil {
		return nil, err
	}
	if err := s.controllerAuth(ctx); err != nil {
		return nil, err
	}
	t, ok := s.opts.Directory.LookupConnector(req.GetValue())
	if !ok || connectorKey(t) == "" {
		return nil, errNoConnector(req.GetValue())
	}
	t.TicketID, t.TicketNumber = "", ""
	return s.start(ctx, t)
}

// start creates an available session on target t.
func (s *Server) start(ctx context.Context, t Target) (*openobdv1.SessionInfo, error) {
	if s.faults.takeRefusal() {
		return nil, errNoFreeResources
	}
	s.mu.Lock()
	now := s.opts.Now()
	s.sweepLocked(now, false)
	conn, ticket := connectorKey(t), ticketKey(t)
	for _, o := range s.sessions {
		if !o.state.Live() {
			continue
		}
		if connectorKey(o.target) == conn || (ticket != "" && ticketKey(o.target) == ticket) {
			s.mu.Unlock()
			return nil, errResourceInUse
		}
	}
	// The session outlives the call that created it, so it keeps the call's
	// values but not its cancellation.
	sctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	gen, genCancel := context.WithCancelCause(sctx)
	sess := &session{
		id:        newUUID(),
		target:    t,
		conn:      s.connectorLocked(t, now),
		state:     StateAvailable,
		createdAt: now,
		authToken: rand.Text(),
		ctx:       sctx,
		cancel:    cancel,
		gen:       gen,
		genCancel: genCancel,
	}
	sess.buses.Store(&busMap{})
	s.sessions[sess.id] = sess
	s.authTokens[sess.authToken] = sess
	s.rememberLocked(sess.authToken)
	info := s.infoLocked(sess)
	v := s.viewLocked(sess)
	s.mu.Unlock()
	s.changed(v)
	return info, nil
}

// ticketKey identifies the ticket of a target: its UUID, else its number.
func ticketKey(t Target) string {
	if t.TicketID != "" {
		return t.TicketID
	}
	return t.TicketNumber
}

func (c *controllerService) GetSession(ctx context.Context, req *openobdv1.SessionId) (*openobdv1.SessionInfo, error) {
	s := c.s
	if err := s.enter(ctx, openobdv1.SessionController_GetSession_FullMethodName); err != nil {
		return nil, err
	}
	if err := s.controllerAuth(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.lookupLocked(req.GetValue(), s.opts.Now())
	if sess == nil {
		return nil, errNoSession(req.GetValue())
	}
	return s.infoLocked(sess), nil
}

func (c *controllerService) InterruptSession(ctx context.Context, req *openobdv1.SessionId) (*openobdv1.SessionInfo, error) {
	s := c.s
	if err := s.enter(ctx, openobdv1.SessionController_InterruptSession_FullMethodName); err != nil {
		return nil, err
	}
	if err := s.controllerAuth(ctx); err != nil {
		return nil, err
	}
	v, err := s.end(req.GetValue(), StateInterrupted, "interrupted through interruptSession")
	switch {
	case err == nil:
	case v.ID == "":
		return nil, errNoSession(req.GetValue())
	default:
		return nil, errNotActive(v.State)
	}
	return sessionInfo(v), nil
}

func (c *controllerService) GetSessionList(ctx context.Context, _ *openobdv1.EmptyMessage) (*openobdv1.SessionInfoList, error) {
	s := c.s
	if err := s.enter(ctx, openobdv1.SessionController_GetSessionList_FullMethodName); err != nil {
		return nil, err
	}
	if err := s.controllerAuth(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	s.sweepLocked(now, false)
	list := &openobdv1.SessionInfoList{}
	for _, sess := range s.sortedLocked(now) {
		list.Sessions = append(list.Sessions, s.infoLocked(sess))
	}
	return list, nil
}
