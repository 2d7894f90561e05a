package fake

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Faults steers the misbehaviour of a Server at run time. All methods are
// safe for concurrent use; the zero state is a well-behaved fake.
type Faults struct {
	s *Server

	// cur is what every call and every ISO-TP message reads: a snapshot of
	// the settings below, replaced (never modified) with mu held.
	cur atomic.Pointer[faultSettings]

	mu       sync.Mutex
	callLat  time.Duration
	isotpLat time.Duration
	refuse   int           // > 0: refuse that many starts; < 0: refuse all
	hang     chan struct{} // non-nil while calls hang; closed to release them
	ecu      map[ecuKey]*ECUFault
	fail     map[string]*callFailure // by full method name
}

// callFailure is a FailCalls fault: the next count calls fail with err.
type callFailure struct {
	count int
	err   error
}

// faultSettings is a snapshot of the fault settings that calls and ISO-TP
// messages read.
type faultSettings struct {
	callLat  time.Duration
	isotpLat time.Duration
	hang     chan struct{} // non-nil while calls hang
	// ecu reports whether any ECU fault is set; only then does a request
	// take Faults.mu to count it down.
	ecu bool
	// fail reports whether any FailCalls fault is set; only then does a
	// call take Faults.mu to count it down.
	fail bool
}

// settings returns the current fault settings without locking.
func (f *Faults) settings() *faultSettings { return f.cur.Load() }

// publishLocked replaces the snapshot after a change of the settings; the
// caller holds f.mu.
func (f *Faults) publishLocked() {
	f.cur.Store(&faultSettings{callLat: f.callLat, isotpLat: f.isotpLat, hang: f.hang, ecu: len(f.ecu) > 0, fail: len(f.fail) > 0})
}

// ECUFault makes one ECU misbehave. The zero value clears the fault.
type ECUFault struct {
	// Silent drops every request: the client times out.
	Silent bool
	// BusyRepeat answers the next BusyRepeat requests with 7F <sid> 21
	// (busyRepeatRequest) instead of handling them.
	BusyRepeat int
	// Pending sends that many 7F <sid> 78 (responsePending) answers before
	// the real answer, spaced by Options.RoutinePendingSpacing.
	Pending int
	// PendingRequests is how many of the next requests get the Pending
	// answers: 0 means 1, a negative value means every request.
	PendingRequests int
}

// ECUFaultEntry is one active ECU fault.
type ECUFaultEntry struct {
	ConnectorID string // empty: every connector
	RequestID   uint32
	Fault       ECUFault
}

// FaultState is a snapshot of the active faults.
type FaultState struct {
	CallLatency  time.Duration
	IsotpLatency time.Duration
	RefuseStarts int // > 0: that many more; < 0: until cleared
	Hang         bool
	ECUs         []ECUFaultEntry
	Disconnected []string // connector ids
}

type ecuKey struct {
	connector string
	requestID uint32
}

type ecuAction struct {
	silent  bool
	busy    bool
	pending int
}

// SetCallLatency delays every RPC (and each stream when it opens) by d, and
// raises the latency that the connection monitor reports by d.
func (f *Faults) SetCallLatency(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callLat = max(d, 0)
	f.publishLocked()
	f.s.log.Info("fault set", "fault", "call_latency", "value", f.callLat)
}

// SetIsotpLatency delays every ISO-TP answer by d.
func (f *Faults) SetIsotpLatency(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.isotpLat = max(d, 0)
	f.publishLocked()
	f.s.log.Info("fault set", "fault", "isotp_latency", "value", f.isotpLat)
}

// RefuseStarts makes the next n session starts fail with UNAVAILABLE "There
// are no free resources available at the moment. Please try again in two
// minutes."; n < 0 refuses until cleared and n == 0 clears.
func (f *Faults) RefuseStarts(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse = n
	f.s.log.Info("fault set", "fault", "refuse_starts", "value", n)
}

// FailCalls makes the next n calls of method (a full method name, e.g.
// openobdv1.Config_ConfigureBus_FullMethodName) fail with err (a gRPC
// status error) before they do anything; n <= 0 clears it. The calls are
// counted by Server.Calls as usual.
func (f *Faults) FailCalls(method string, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n <= 0 {
		delete(f.fail, method)
	} else {
		if f.fail == nil {
			f.fail = map[string]*callFailure{}
		}
		f.fail[method] = &callFailure{count: n, err: err}
	}
	f.publishLocked()
	f.s.log.Info("fault set", "fault", "fail_calls", "method", method, "value", n)
}

// takeCallFailure returns the error the call of method must fail with, or
// nil, counting a FailCalls fault down.
func (f *Faults) takeCallFailure(method string) error {
	if !f.settings().fail {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.fail[method]
	if c == nil {
		return nil
	}
	if c.count--; c.count <= 0 {
		delete(f.fail, method)
		f.publishLocked()
	}
	return c.err
}

// Hang makes every call (and every ISO-TP request) wait until its context
// ends or Hang(false) is called.
func (f *Faults) Hang(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case on && f.hang == nil:
		f.hang = make(chan struct{})
	case !on && f.hang != nil:
		close(f.hang)
		f.hang = nil
	}
	f.publishLocked()
	f.s.log.Info("fault set", "fault", "hang", "value", on)
}

// SetECUFault sets the fault of the ECU listening on requestID behind the
// connector with the given id or name, or behind every connector when
// connector is empty. A connector-specific fault wins over the general one.
func (f *Faults) SetECUFault(connector string, requestID uint32, fault ECUFault) error {
	key := ecuKey{requestID: requestID}
	if connector != "" {
		k, ok := f.s.resolveConnector(connector)
		if !ok {
			return ErrConnectorNotFound
		}
		key.connector = k
	}
	if fault.Pending > 0 && fault.PendingRequests == 0 {
		fault.PendingRequests = 1
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if fault.empty() {
		delete(f.ecu, key)
	} else {
		f.ecu[key] = &fault
	}
	f.publishLocked()
	f.s.log.Info("fault set", "fault", "ecu", "connector_id", key.connector, "request_id", requestID,
		"silent", fault.Silent, "busy_repeat", fault.BusyRepeat, "pending", fault.Pending)
	return nil
}

func (e *ECUFault) empty() bool {
	return !e.Silent && e.BusyRepeat <= 0 && (e.Pending <= 0 || e.PendingRequests == 0)
}

// ExpireSessionTokens makes every session token issued so far expire now and
// returns how many were valid. Tokens issued later are not affected.
func (f *Faults) ExpireSessionTokens() int {
	s := f.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	n := 0
	for _, e := range s.sessionTokens {
		if now.Before(e.expires) {
			e.expires = now
			n++
		}
	}
	s.log.Info("fault set", "fault", "expire_session_tokens", "value", n)
	return n
}

// ExpireControllerTokens makes every session-controller token issued so far
// expire now and returns how many were valid.
func (f *Faults) ExpireControllerTokens() int {
	s := f.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	n := 0
	for tok, exp := range s.controllerTokens {
		if now.Before(exp) {
			s.controllerTokens[tok] = now
			n++
		}
	}
	s.log.Info("fault set", "fault", "expire_controller_tokens", "value", n)
	return n
}

// DropStreams ends the open streams of a live session with UNAVAILABLE; the
// session stays live and a client is expected to open them again.
func (f *Faults) DropStreams(sessionID string) error {
	s := f.s
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.lookupLocked(sessionID, s.opts.Now())
	if sess == nil {
		return ErrSessionNotFound
	}
	if !sess.state.Live() {
		return ErrSessionNotLive
	}
	sess.genCancel(errStreamDropped)
	sess.gen, sess.genCancel = context.WithCancelCause(sess.ctx)
	s.log.Info("fault set", "fault", "drop_streams", "session_id", sessionID)
	return nil
}

// DisconnectConnector takes the connector (by id or name) off line:
// ConnectorInformation reports connected=false and ISO-TP requests stay
// unanswered until ReconnectConnector.
func (f *Faults) DisconnectConnector(idOrName string) error {
	return f.s.setConnected(idOrName, false)
}

// ReconnectConnector brings a disconnected connector back.
func (f *Faults) ReconnectConnector(idOrName string) error {
	return f.s.setConnected(idOrName, true)
}

// Clear removes every fault and reconnects every connector.
func (f *Faults) Clear() {
	f.SetCallLatency(0)
	f.SetIsotpLatency(0)
	f.RefuseStarts(0)
	f.Hang(false)
	f.mu.Lock()
	clear(f.ecu)
	clear(f.fail)
	f.publishLocked()
	f.mu.Unlock()
	s := f.s
	s.mu.Lock()
	now := s.opts.Now()
	for _, c := range s.connectors {
		if !c.link.Load().connected {
			c.link.Store(&link{connected: true, since: now})
		}
	}
	s.mu.Unlock()
}

// State returns a snapshot of the active faults.
func (f *Faults) State() FaultState {
	f.mu.Lock()
	st := FaultState{
		CallLatency:  f.callLat,
		IsotpLatency: f.isotpLat,
		RefuseStarts: f.refuse,
		Hang:         f.hang != nil,
	}
	for k, v := range f.ecu {
		st.ECUs = append(st.ECUs, ECUFaultEntry{ConnectorID: k.connector, RequestID: k.requestID, Fault: *v})
	}
	f.mu.Unlock()
	slices.SortFunc(st.ECUs, func(a, b ECUFaultEntry) int {
		return cmp.Or(cmp.Compare(a.ConnectorID, b.ConnectorID), cmp.Compare(a.RequestID, b.RequestID))
	})
	s := f.s
	s.mu.Lock()
	for _, c := range s.connectors {
		if !c.link.Load().connected {
			st.Disconnected = append(st.Disconnected, c.key)
		}
	}
	s.mu.Unlock()
	slices.Sort(st.Disconnected)
	return st
}

// takeRefusal reports whether a start must be refused, counting it down.
func (f *Faults) takeRefusal() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.refuse > 0:
		f.refuse--
		return true
	case f.refuse < 0:
		return true
	}
	return false
}

// waitHang blocks while the hang fault is set.
func (f *Faults) waitHang(ctx context.Context, closing <-chan struct{}) error {
	h := f.settings().hang
	if h == nil {
		return nil
	}
	select {
	case <-h:
		return nil
	case <-ctx.Done():
		return streamErr(ctx)
	case <-closing:
		return errShuttingDown
	}
}

// takeECUFault returns what to do with one request to an ECU and counts the
// fault down. While no ECU fault is set it takes no lock.
func (f *Faults) takeECUFault(connector string, requestID uint32) ecuAction {
	if !f.settings().ecu {
		return ecuAction{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := ecuKey{connector: connector, requestID: requestID}
	st := f.ecu[key]
	if st == nil {
		key.connector = ""
		st = f.ecu[key]
	}
	if st == nil {
		return ecuAction{}
	}
	var a ecuAction
	switch {
	case st.Silent:
		return ecuAction{silent: true}
	case st.BusyRepeat > 0:
		st.BusyRepeat--
		a.busy = true
	case st.Pending > 0 && st.PendingRequests != 0:
		a.pending = st.Pending
		if st.PendingRequests > 0 {
			st.PendingRequests--
		}
	}
	if st.empty() {
		delete(f.ecu, key)
		f.publishLocked()
	}
	return a
}

// resolveConnector returns the key of a connector given by id or name.
func (s *Server) resolveConnector(idOrName string) (string, bool) {
	s.mu.Lock()
	for _, c := range s.connectors {
		if c.key == idOrName || c.name == idOrName {
			s.mu.Unlock()
			return c.key, true
		}
	}
	s.mu.Unlock()
	t, ok := s.opts.Directory.LookupConnector(idOrName)
	if !ok || connectorKey(t) == "" {
		return "", false
	}
	return connectorKey(t), true
}

func (s *Server) setConnected(idOrName string, connected bool) error {
	var target Target
	s.mu.Lock()
	var c *connector
	for _, o := range s.connectors {
		if o.key == idOrName || o.name == idOrName {
			c = o
			break
		}
	}
	s.mu.Unlock()
	if c == nil {
		t, ok := s.opts.Directory.LookupConnector(idOrName)
		if !ok || connectorKey(t) == "" {
			return ErrConnectorNotFound
		}
		target = t
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	if c == nil {
		c = s.connectorLocked(target, now)
	}
	l := *c.link.Load()
	if connected && !l.connected {
		l.since = now
	}
	l.connected = connected
	c.link.Store(&l)
	s.log.Info("fault set", "fault", "connector_connected", "connector_id", c.key, "value", connected)
	return nil
}
