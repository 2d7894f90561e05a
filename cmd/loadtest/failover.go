package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/obdorch/obdorch/connector"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/controlplane"
	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
	"github.com/obdorch/obdorch/partner"
)

// The failover scenario: three replicas in this process on a three-member
// embedded etcd cluster, as three hosts would run them, share --tickets
// tickets. Before the kill it leases up to --sessions sessions of one
// replica and measures Send through that owner, Send through another replica
// (forwarded to the owner) and a bare gRPC hop, one after the other; then it
// kills the owner as kill -9 would (its store lease is left to expire), the
// runners still holding their leases, and times until every one of its
// sessions is adopted by a survivor (READY, or RUNNING under its runner's
// lease) and answers a Send made through a survivor: with the runner's own
// lease where it had one, else after leasing it anew.

// failoverResult is the failover scenario's report.
type failoverResult struct {
	Scenario string `json:"scenario"`
	Tickets  int    `json:"tickets"`
	Replicas int    `json:"replicas"`
	// StoreLeaseTTLSeconds is --store-lease-ttl.
	StoreLeaseTTLSeconds float64 `json:"store_lease_ttl_seconds"`
	// IntakeSeconds runs from the tickets' appearance to all READY.
	IntakeSeconds float64 `json:"intake_seconds"`
	// SpreadBefore and SpreadAfter are the sessions held by each replica
	// before the kill and once the survivors hold them all.
	SpreadBefore map[string]int `json:"spread_before"`
	SpreadAfter  map[string]int `json:"spread_after"`
	// MaxShareBefore and MaxShareAfter are the largest fraction of the
	// sessions one replica holds.
	MaxShareBefore float64 `json:"max_share_before"`
	MaxShareAfter  float64 `json:"max_share_after"`
	// KilledSessions are the sessions the killed replica held;
	// KilledLeased those of them a runner held a lease on at the kill.
	KilledSessions int `json:"killed_sessions"`
	KilledLeased   int `json:"killed_leased"`
	// AdoptedSeconds runs from the kill to the last of them recorded with a
	// survivor as owner, READY or (under its runner's lease) RUNNING;
	// FailoverSeconds to the last of them usable through a survivor: a
	// Send answered, with the runner's lease (the same lease id as before
	// the kill) or after an AcquireSession.
	AdoptedSeconds  float64 `json:"adopted_seconds"`
	FailoverSeconds float64 `json:"failover_seconds"`
	// NewOpenOBDSessions are openOBD sessions started after the kill;
	// Duplicates the live openOBD sessions beyond one per ticket.
	NewOpenOBDSessions int `json:"new_openobd_sessions"`
	Duplicates         int `json:"duplicates"`
	// Send latency through the owner, forwarded through another replica,
	// and of a bare gRPC hop, in ms; ForwardedAdded is forwarded - owner.
	SendSessions        int           `json:"send_sessions"`
	OwnerP50            float64       `json:"owner_send_p50_ms"`
	OwnerP99            float64       `json:"owner_send_p99_ms"`
	ForwardedP50        float64       `json:"forwarded_send_p50_ms"`
	ForwardedP99        float64       `json:"forwarded_send_p99_ms"`
	BareP50             float64       `json:"bare_hop_p50_ms"`
	BareP99             float64       `json:"bare_hop_p99_ms"`
	SendRPS             float64       `json:"owner_send_rps"`
	ForwardedAddedP50   float64       `json:"forwarded_added_p50_ms"`
	ForwardedAddedP99   float64       `json:"forwarded_added_p99_ms"`
	ForwardedPerBareP50 float64       `json:"forwarded_added_p50_per_bare_hop_p50"`
	MeasuredSeconds     float64       `json:"measured_seconds"`
	Fsync               bool          `json:"fsync"`
	Lost                uint64        `json:"lost"`
	Targets             []targetCheck `json:"targets"`
}

func (r *failoverResult) name() string      { return "failover" }
func (r *failoverResult) lostCount() uint64 { return r.Lost }

func (r *failoverResult) check(cfg *config) {
	short := shortRun(time.Duration(r.MeasuredSeconds * float64(time.Second)))
	r.Targets = []targetCheck{
		atMost("failover: a killed replica's sessions answering a Send through the survivors <= store lease TTL + 2 s", r.FailoverSeconds, r.StoreLeaseTTLSeconds+2, "s", false, nil),
		atMost("duplicate live openOBD sessions = 0", float64(r.Duplicates), 0, "", false, nil),
		atMost("new openOBD sessions after the kill = 0 (stored tokens re-attach)", float64(r.NewOpenOBDSessions), 0, "", false, nil),
		atMost("largest share of sessions after the failover <= 60 %", 100*r.MaxShareAfter, 60, "%", false, unless(nil, r.Tickets >= 30, "set for 30 tickets or more")),
		atMost("forwarded Send added p50 <= 2x a bare gRPC hop", r.ForwardedPerBareP50, 2, "x", true, short),
	}
}

func (r *failoverResult) printTable(w io.Writer) {
	fmt.Fprintf(w, "failover: %d tickets on %d replicas, 3-member etcd cluster (fsync %v), store lease %s s\n\n", r.Tickets, r.Replicas, r.Fsync, num(r.StoreLeaseTTLSeconds))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "intake to all READY\t%s s\t\n", num(r.IntakeSeconds))
	fmt.Fprintf(tw, "spread before the kill\t%s\t(largest %s %%)\n", spread(r.SpreadBefore), num(100*r.MaxShareBefore))
	fmt.Fprintf(tw, "killed replica's sessions\t%d\t(%d leased by runners)\n", r.KilledSessions, r.KilledLeased)
	fmt.Fprintf(tw, "kill to all of them adopted by a survivor\t%s s\t\n", num(r.AdoptedSeconds))
	fmt.Fprintf(tw, "kill to all of them answering a Send\t%s s\t(a runner with its own lease)\n", num(r.FailoverSeconds))
	fmt.Fprintf(tw, "spread after\t%s\t(largest %s %%)\n", spread(r.SpreadAfter), num(100*r.MaxShareAfter))
	fmt.Fprintf(tw, "new openOBD sessions / duplicates\t%d / %d\t\n", r.NewOpenOBDSessions, r.Duplicates)
	fmt.Fprintln(tw, "\t\t")
	fmt.Fprintf(tw, "Send, %d sessions, %s s each\tp50 ms\tp99 ms\t\n", r.SendSessions, num(r.MeasuredSeconds))
	fmt.Fprintf(tw, "  through the owner\t%s\t%s\t(%s req/s)\n", num(r.OwnerP50), num(r.OwnerP99), num(r.SendRPS))
	fmt.Fprintf(tw, "  forwarded by another replica\t%s\t%s\t\n", num(r.ForwardedP50), num(r.ForwardedP99))
	fmt.Fprintf(tw, "  bare gRPC hop\t%s\t%s\t\n", num(r.BareP50), num(r.BareP99))
	fmt.Fprintf(tw, "forwarding adds\t%s\t%s\t(p50 %s x the bare hop)\n", num(r.ForwardedAddedP50), num(r.ForwardedAddedP99), num(r.ForwardedPerBareP50))
	tw.Flush()
	printTargets(w, r.Targets)
}

func spread(m map[string]int) string {
	var b bytes.Buffer
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s:%d", k, m[k])
	}
	return b.String()
}

// clusterReplica is one in-process replica of the failover scenario.
type clusterReplica struct {
	name   string
	st     *store.Store
	pc     *partner.Client
	oc     *connector.Client
	core   *orchestrator.Orchestrator
	svc    *controlplane.Service
	srv    *controlplane.Server
	fwd    *controlplane.Forwarder
	served chan error
	stop   context.CancelFunc
	done   chan struct{}
	conn   *grpc.ClientConn
	api    orchestratorv1.OrchestratorServiceClient
	once   sync.Once
}

// startClusterReplica wires a replica as cmd/orchestrator does with
// --etcd-endpoints and --replica-token, and starts it.
func (r *runner) startClusterReplica(ctx context.Context, fw *fakeWorld, endpoints []string, name, token string) (_ *clusterReplica, err error) {
	cfg, clog := r.cfg, r.clog.With("replica", name)
	c := &clusterReplica{name: name}
	defer func() {
		if err != nil {
			c.kill(true)
		}
	}()
	if c.st, err = store.Open(ctx, store.Config{Endpoints: endpoints, Replica: name, LeaseTTL: cfg.storeLeaseTTL, Logger: clog.With("component", "store")}); err != nil {
		return nil, fmt.Errorf("replica %s: open store: %w", name, err)
	}
	if c.pc, err = fw.partnerClient(clog.With("component", "partner")); err != nil {
		return nil, err
	}
	if c.oc, err = fw.openOBDClient(clog.With("component", "openobd")); err != nil {
		return nil, err
	}
	if c.core, err = orchestrator.New(orchestrator.Config{Logger: clog.With("component", "core"),
		MaxSessions: max(cfg.tickets, orchestrator.DefaultMaxSessions)}, c.st, c.pc, c.oc); err != nil {
		return nil, err
	}
	if c.fwd, err = controlplane.NewForwarder(controlplane.ForwardOptions{Replica: name, Token: token, Registry: c.st, Logger: clog.With("component", "forward")}); err != nil {
		return nil, err
	}
	c.svc = controlplane.NewService(c.core, controlplane.Options{Logger: clog.With("component", "control-plane"), Forwarder: c.fwd})
	unary, stream := c.fwd.ForwardInterceptors()
	c.srv = controlplane.NewServer(c.svc, controlplane.ServerOptions{Logger: clog.With("component", "grpc"),
		Unary: []grpc.UnaryServerInterceptor{unary}, Stream: []grpc.StreamServerInterceptor{stream}})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c.served = make(chan error, 1)
	go func() { c.served <- c.srv.Serve(lis) }()
	if err := c.st.Register(ctx, lis.Addr().String()); err != nil {
		return nil, err
	}
	if c.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return nil, err
	}
	c.api = orchestratorv1.NewOrchestratorServiceClient(c.conn)
	cctx, stop := context.WithCancel(context.Background())
	c.stop, c.done = stop, make(chan struct{})
	go func() {
		defer close(c.done)
		if err := c.core.Start(cctx); err != nil {
			r.log.Error("replica core failed", "replica", name, "err", err)
		}
	}()
	return c, nil
}

// kill stops the replica: cleanly (revoking its store lease), or as kill
// -9 would, leaving its store lease to expire.
func (c *clusterReplica) kill(clean bool) {
	c.once.Do(func() {
		if c.conn != nil {
			_ = c.conn.Close()
		}
		if c.srv != nil {
			c.srv.Stop()
			<-c.served
		}
		if c.fwd != nil {
			_ = c.fwd.Close()
		}
		if c.stop != nil {
			c.stop()
			<-c.done
		}
		if c.st != nil {
			if clean {
				_ = c.st.Close()
			} else {
				_ = c.st.Detach()
			}
		}
		if c.oc != nil {
			_ = c.oc.Close()
		}
		if c.pc != nil {
			c.pc.CloseIdleConnections()
		}
	})
}

// runFailover runs the scenario once.
func (r *runner) runFailover(ctx context.Context) (_ *failoverResult, err error) {
	cfg := r.cfg
	fw, err := r.startFake(0, 0)
	if err != nil {
		return nil, err
	}
	defer fw.close()
	dir, err := os.MkdirTemp("", "loadtest-etcd-cluster-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cluster, err := store.StartEmbeddedCluster(ctx, store.EmbeddedClusterConfig{Dir: dir, UnsafeNoFsync: cfg.noFsync, Logger: r.clog.With("component", "etcd")})
	if err != nil {
		return nil, fmt.Errorf("start the etcd cluster: %w", err)
	}
	defer cluster.Close()
	token := rand.Text()
	var reps []*clusterReplica
	defer func() {
		for _, c := range reps {
			c.kill(true)
		}
	}()
	for _, name := range []string{"replica-1", "replica-2", "replica-3"} {
		c, err := r.startClusterReplica(ctx, fw, cluster.Endpoints(), name, token)
		if err != nil {
			return nil, err
		}
		reps = append(reps, c)
	}
	if err := waitFor(ctx, time.Minute, "every replica sees the three in the registry", func() bool {
		for _, c := range reps {
			if len(c.core.Replicas()) != len(reps) {
				return false
			}
		}
		return true
	}); err != nil {
		return nil, err
	}
	rev0, err := reps[0].st.Revision(ctx)
	if err != nil {
		return nil, err
	}

	r.log.Info("tickets appear", "tickets", cfg.tickets, "replicas", len(reps))
	began := time.Now()
	tickets := fw.jf.Partner.Seed(cfg.tickets, 21)
	for _, c := range reps {
		c.core.Resync() // rather than waiting for the next pass
	}
	owners, err := readyOwners(ctx, reps[0].core, rev0, cfg.tickets, readyTimeout(cfg.tickets))
	if err != nil {
		return nil, err
	}
	res := &failoverResult{Scenario: "failover", Tickets: cfg.tickets, Replicas: len(reps), StoreLeaseTTLSeconds: cfg.storeLeaseTTL.Seconds(),
		IntakeSeconds: time.Since(began).Seconds(), Fsync: !cfg.noFsync}
	res.SpreadBefore, res.MaxShareBefore = spreadOf(owners)

	// Send through the replica, other than the first (which forwards and
	// watches the failover), that holds the most sessions, forwarded by the
	// first, and a bare hop. The spread of a few tickets can leave a replica
	// with none.
	held := res.SpreadBefore
	owner := reps[1]
	for _, c := range reps[2:] {
		if held[c.name] > held[owner.name] {
			owner = c
		}
	}
	leases, err := r.sendPhases(ctx, res, owner, reps[0], owners)
	if err != nil {
		return nil, err
	}

	// The kill: of that owner, its runners still holding their leases.
	victim := owner
	var killed []killedSession
	for id, o := range owners {
		if o == victim.name {
			rec, err := reps[0].core.GetSession(ctx, id)
			if err != nil {
				return nil, err
			}
			killed = append(killed, killedSession{id: id, ticket: rec.TicketID, lease: leases[id]})
			if leases[id] != "" {
				res.KilledLeased++
			}
		}
	}
	res.KilledSessions = len(killed)
	starts0 := fw.jf.OpenOBD.Calls()
	rev1, err := reps[0].st.Revision(ctx)
	if err != nil {
		return nil, err
	}
	r.log.Info("killing a replica", "replica", victim.name, "sessions", len(killed))
	killedAt := time.Now()
	victim.kill(false)
	adopted, err := waitAdopted(ctx, reps[0].core, rev1, killed, victim.name, cfg.storeLeaseTTL+time.Minute)
	if err != nil {
		return nil, err
	}
	usable, err := waitUsable(ctx, reps[0], killed, time.Minute)
	if err != nil {
		return nil, err
	}
	res.AdoptedSeconds, res.FailoverSeconds = adopted.Sub(killedAt).Seconds(), usable.Sub(killedAt).Seconds()
	for id := range owners {
		rec, err := reps[0].st.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		owners[id] = rec.Owner
	}
	res.SpreadAfter, res.MaxShareAfter = spreadOf(owners)
	starts1 := fw.jf.OpenOBD.Calls()
	for _, m := range []string{openobdv1.SessionController_StartSessionOnTicket_FullMethodName, openobdv1.SessionController_StartSessionOnConnector_FullMethodName} {
		res.NewOpenOBDSessions += starts1[m] - starts0[m]
	}
	live := map[string]int{}
	for _, s := range fw.jf.OpenOBD.Sessions() {
		if s.State.Live() {
			live[s.TicketID]++
		}
	}
	for _, t := range tickets {
		res.Duplicates += max(live[t.ID]-1, 0)
	}
	return res, nil
}

// readyOwners follows the store from rev until n sessions are READY and
// returns their owners by session id.
func readyOwners(ctx context.Context, core *orchestrator.Orchestrator, rev int64, n int, limit time.Duration) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	owners := map[string]string{}
	for ev, err := range core.WatchSessions(ctx, rev+1, orchestrator.SessionFilter{}) {
		if err != nil {
			return nil, fmt.Errorf("waiting for %d READY sessions: %d: %w", n, len(owners), err)
		}
		if ev.Session.State == session.StateReady {
			owners[ev.Session.ID] = ev.Session.Owner
		}
		if len(owners) >= n {
			return owners, nil
		}
	}
	return nil, ctx.Err()
}

// killedSession is a session of the killed replica, with the lease a
// runner held on it at the kill (empty when none).
type killedSession struct {
	id, ticket, lease string
}

// waitAdopted follows the store from rev until every session in killed has
// an owner other than gone and is READY, or RUNNING under the lease its
// runner held, and returns when the last one was.
func waitAdopted(ctx context.Context, core *orchestrator.Orchestrator, rev int64, killed []killedSession, gone string, limit time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	want := map[string]string{}
	for _, k := range killed {
		want[k.id] = k.lease
	}
	adopted := map[string]bool{}
	last := time.Now()
	if len(killed) == 0 {
		return last, nil
	}
	for ev, err := range core.WatchSessions(ctx, rev+1, orchestrator.SessionFilter{}) {
		if err != nil {
			return last, fmt.Errorf("waiting for %d adopted sessions: %d adopted: %w", len(killed), len(adopted), err)
		}
		s := ev.Session
		lease, ok := want[s.ID]
		if !ok || adopted[s.ID] || s.Owner == gone || s.Owner == "" {
			continue
		}
		if s.State == session.StateReady || (s.State == session.StateRunning && lease != "" && s.Lease != nil && s.Lease.ID == lease) {
			adopted[s.ID], last = true, time.Now()
			if len(adopted) == len(killed) {
				return last, nil
			}
		}
	}
	return last, ctx.Err()
}

// waitUsable sends one request on each killed session through via, with
// its runner's lease or, without one, after leasing the session through
// via, retrying every 20 ms until that succeeds, and returns when the last
// one did: the session is attached again on openOBD.
func waitUsable(ctx context.Context, via *clusterReplica, killed []killedSession, limit time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var mu sync.Mutex
	last := time.Now()
	err := parallel(len(killed), setupWidth, func(i int) error {
		lease, id := killed[i].lease, killed[i].id
		for {
			var err error
			if lease == "" {
				var acq *orchestratorv1.AcquireSessionResponse
				actx, cancel := context.WithTimeout(ctx, time.Second)
				acq, err = via.api.AcquireSession(actx, &orchestratorv1.AcquireSessionRequest{Runner: "loadtest-failover", TicketId: killed[i].ticket, LeaseTtl: durationpb.New(leaseTTL)})
				cancel()
				lease, id = acq.GetLeaseId(), acq.GetSession().GetId()
			}
			if err == nil {
				var resp *orchestratorv1.SendResponse
				resp, err = via.api.Send(ctx, &orchestratorv1.SendRequest{SessionId: id, LeaseId: lease, Payload: readVIN,
					Channel: &orchestratorv1.Channel{BusName: busName, RequestId: engineReq, ResponseId: engineResp}})
				if err == nil && bytes.HasPrefix(resp.GetPayload(), vinResponse) {
					mu.Lock()
					if now := time.Now(); now.After(last) {
						last = now
					}
					mu.Unlock()
					return nil
				}
			}
			t := time.NewTimer(20 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("ticket %s not usable through %s: %w (last error: %v)", killed[i].ticket, via.name, ctx.Err(), err)
			case <-t.C:
			}
		}
	})
	return last, err
}

func spreadOf(owners map[string]string) (map[string]int, float64) {
	by := map[string]int{}
	for _, o := range owners {
		by[o]++
	}
	most := 0
	for _, n := range by {
		most = max(most, n)
	}
	return by, float64(most) / float64(max(len(owners), 1))
}

// sendPhases leases sessions owned by owner and measures Send on them
// through owner, then through other (forwarded), then a bare gRPC hop, each
// with the same number of callers. It returns the leases, by session id,
// which it keeps.
func (r *runner) sendPhases(ctx context.Context, res *failoverResult, owner, other *clusterReplica, owners map[string]string) (map[string]string, error) {
	cfg := r.cfg
	var mine []string
	for id, o := range owners {
		if o == owner.name {
			mine = append(mine, id)
		}
	}
	slices.Sort(mine)
	n := min(cfg.sessions, len(mine))
	if n == 0 {
		return nil, fmt.Errorf("replica %s holds no session to send on", owner.name)
	}
	res.SendSessions = n
	leases := make([]string, n)
	err := parallel(n, setupWidth, func(i int) error {
		rec, err := owner.core.GetSession(ctx, mine[i])
		if err != nil {
			return err
		}
		acq, err := owner.api.AcquireSession(ctx, &orchestratorv1.AcquireSessionRequest{Runner: fmt.Sprintf("loadtest-%d", i), TicketId: rec.TicketID, LeaseTtl: durationpb.New(leaseTTL)})
		if err != nil {
			return fmt.Errorf("AcquireSession: %w", err)
		}
		if acq.GetSession().GetId() != mine[i] {
			return fmt.Errorf("AcquireSession for ticket %s leased session %s, want %s", rec.TicketID, acq.GetSession().GetId(), mine[i])
		}
		leases[i] = acq.GetLeaseId()
		return nil
	})
	if err != nil {
		return nil, err
	}
	sends := func(via *clusterReplica) []exchanger {
		exs := make([]exchanger, n)
		for i := range n {
			req := &orchestratorv1.SendRequest{SessionId: mine[i], LeaseId: leases[i], Payload: readVIN,
				Channel: &orchestratorv1.Channel{BusName: busName, RequestId: engineReq, ResponseId: engineResp}}
			exs[i] = exchangeFunc(func(ctx context.Context) error {
				resp, err := via.api.Send(ctx, req)
				if err != nil {
					return err
				}
				if !bytes.HasPrefix(resp.GetPayload(), vinResponse) {
					return fmt.Errorf("%w: got % X", errMismatch, head(resp.GetPayload()))
				}
				return nil
			})
		}
		return exs
	}
	spec := loadSpec{interval: cfg.interval, warmup: cfg.warmup, duration: cfg.duration}
	ownerLoad := r.load(ctx, "failover", "owner send", sends(owner), spec)
	fwdLoad := r.load(ctx, "failover", "forwarded send", sends(other), spec)
	echo, err := startEcho()
	if err != nil {
		return nil, err
	}
	bareExs := make([]exchanger, n)
	for i := range bareExs {
		bareExs[i] = echo.unary(readVIN)
	}
	bareLoad := r.load(ctx, "failover", "bare hop", bareExs, spec)
	echo.close()
	res.Lost = ownerLoad.lost + fwdLoad.lost + bareLoad.lost
	res.OwnerP50, res.OwnerP99 = ms(ownerLoad.hist.quantile(0.5)), ms(ownerLoad.hist.quantile(0.99))
	res.ForwardedP50, res.ForwardedP99 = ms(fwdLoad.hist.quantile(0.5)), ms(fwdLoad.hist.quantile(0.99))
	res.BareP50, res.BareP99 = ms(bareLoad.hist.quantile(0.5)), ms(bareLoad.hist.quantile(0.99))
	res.SendRPS = ownerLoad.rps()
	res.ForwardedAddedP50 = res.ForwardedP50 - res.OwnerP50
	res.ForwardedAddedP99 = res.ForwardedP99 - res.OwnerP99
	res.ForwardedPerBareP50 = ratio(res.ForwardedAddedP50, res.BareP50)
	res.MeasuredSeconds = cfg.duration.Seconds()
	held := make(map[string]string, n)
	for i := range n {
		held[mine[i]] = leases[i]
	}
	return held, nil
}

// waitFor polls cond every 10 ms until it holds, for at most limit.
func waitFor(ctx context.Context, limit time.Duration, what string, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting until %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}
