package orchestrator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/obdorch/obdorch/connector/fake"
	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
	"github.com/obdorch/obdorch/partner"
)

// Three replicas on a three-member etcd cluster (store.EmbeddedCluster):
// intake spread without duplicates, failover, a replica paused past its
// store lease, the loss of the etcd quorum, and the watch across replicas
// and member restarts.

const (
	clusterTickets = 30
	// clusterShareGrace keeps work where the share puts it while every
	// replica is responsive: only a replica stalled for this long has its
	// share taken by the others.
	clusterShareGrace = 20 * time.Second
	// clusterLeaseTTL is the replicas' store lease: the default of
	// --store-lease-ttl, which keeps leases through the scheduling delays of
	// a loaded machine running several clusters at once.
	clusterLeaseTTL = store.DefaultLeaseTTL
	// quorumLeaseTTL is the lease in the quorum-loss test, which every
	// replica loses anyway.
	quorumLeaseTTL = 5 * time.Second
	// quorumOutage is how long the quorum-loss test keeps etcd without a
	// quorum (longer if the replicas take longer to report NOT_SERVING).
	quorumOutage = 20 * time.Second
)

// endpoints are the etcd client URLs the replicas use.
func (w *world) endpoints() []string {
	if w.cluster != nil {
		return w.cluster.Endpoints()
	}
	return w.etcd.Endpoints()
}

// newClusterWorld is newWorld on a three-member etcd cluster.
func newClusterWorld(t *testing.T, o worldOptions) *world {
	t.Helper()
	w := newFakeWorld(t, o)
	c, err := store.StartEmbeddedCluster(testCtx(t), store.EmbeddedClusterConfig{Dir: t.TempDir(), UnsafeNoFsync: true})
	if err != nil {
		t.Fatalf("StartEmbeddedCluster: %v", err)
	}
	w.cluster = c
	t.Cleanup(func() { _ = c.Close() })
	return w
}

// healthWatch follows a replica's health reports.
type healthWatch struct {
	mu       sync.Mutex
	ok       bool
	servings int // reports of SERVING after NOT_SERVING (or first)
	changed  chan struct{}
}

func newHealthWatch() *healthWatch { return &healthWatch{changed: make(chan struct{})} }

func (h *healthWatch) report(ok bool, _ string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ok && !h.ok {
		h.servings++
	}
	h.ok = ok
	close(h.changed)
	h.changed = make(chan struct{})
}

// state returns the replica's health now and how many times it has
// reported SERVING since it last did not.
func (h *healthWatch) state() (ok bool, servings int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ok, h.servings
}

// wait returns when the replica reports want.
func (h *healthWatch) wait(ctx context.Context, t *testing.T, name string, want bool) {
	t.Helper()
	for {
		h.mu.Lock()
		ok, ch := h.ok, h.changed
		h.mu.Unlock()
		if ok == want {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("replica %s never reported healthy=%v", name, want)
		}
	}
}

type clusterReplica struct {
	*replica
	health *healthWatch
}

// startThree starts replicas a, b and c, forwarding to each other, and
// returns once each one's registry watch shows all three.
func (w *world) startThree(t *testing.T, cfg orchestrator.Config, leaseTTL ...time.Duration) []clusterReplica {
	t.Helper()
	ttl := clusterLeaseTTL
	if len(leaseTTL) > 0 {
		ttl = leaseTTL[0]
	}
	cfg.ShareGrace = clusterShareGrace
	var rs []clusterReplica
	for _, name := range []string{"a", "b", "c"} {
		h := newHealthWatch()
		c := cfg
		c.OnHealth = h.report
		rs = append(rs, clusterReplica{w.startReplica(name, replicaOptions{cfg: c, replicaToken: clusterToken, storeLeaseTTL: ttl}), h})
	}
	waitRegistries(testCtx(t), t, rs)
	return rs
}

// waitRegistries waits until each replica's registry watch shows them all.
func waitRegistries(ctx context.Context, t *testing.T, rs []clusterReplica) {
	t.Helper()
	var names []string
	for _, r := range rs {
		names = append(names, r.name)
	}
	for _, r := range rs {
		poll(ctx, t, "replica "+r.name+" sees "+strings.Join(names, ", "), func() bool {
			return slices.Equal(r.core.Replicas(), names)
		})
	}
}

// owners counts sessions by owner.
func owners(sessions []*orchestratorv1.Session) map[string]int {
	out := map[string]int{}
	for _, s := range sessions {
		out[s.GetOwner()]++
	}
	return out
}

// checkSpread fails the test when a replica holds more than 60 % of the
// sessions or one that is not among allowed.
func checkSpread(t *testing.T, when string, sessions []*orchestratorv1.Session, allowed ...string) map[string]int {
	t.Helper()
	by := owners(sessions)
	for owner, n := range by {
		if !slices.Contains(allowed, owner) {
			t.Errorf("%s: replica %q holds %d sessions, want only %v", when, owner, n, allowed)
		}
		if n*100 > len(sessions)*60 {
			t.Errorf("%s: replica %s holds %d of %d sessions, more than 60 %%", when, owner, n, len(sessions))
		}
	}
	return by
}

// checkOneOpenOBDPerTicket fails the test unless each ticket has had
// exactly one openOBD session, and it is live.
func checkOneOpenOBDPerTicket(t *testing.T, w *world, tickets []partner.Ticket) {
	t.Helper()
	per := map[string][]fake.Session{}
	for _, s := range w.jf.OpenOBD.Sessions() {
		per[s.TicketID] = append(per[s.TicketID], s)
	}
	for _, tk := range tickets {
		ss := per[tk.ID]
		if len(ss) != 1 || !ss[0].State.Live() {
			t.Errorf("ticket %s has had %d openOBD sessions (%v), want one, live", tk.ID, len(ss), ss)
		}
	}
}

// readyOn waits until every one of ids is READY and owned by one of
// owners, as r's watch-fed cache shows it.
func readyOn(ctx context.Context, t *testing.T, r *replica, ids []string, owners ...string) {
	t.Helper()
	for _, id := range ids {
		poll(ctx, t, "session "+id+" READY on "+strings.Join(owners, " or "), func() bool {
			got, err := r.client.GetSession(ctx, &orchestratorv1.GetSessionRequest{SessionId: id})
			return err == nil && got.GetSession().GetState() == stateReady && slices.Contains(owners, got.GetSession().GetOwner())
		})
	}
}

func ownedBy(sessions []*orchestratorv1.Session, owner string) []string {
	var ids []string
	for _, s := range sessions {
		if s.GetOwner() == owner {
			ids = append(ids, s.GetId())
		}
	}
	return ids
}

// rawClient is an etcd client of the cluster outside every replica.
func (w *world) rawClient(t *testing.T) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: w.endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("clientv3.New: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

func revision(ctx context.Context, t *testing.T, cli *clientv3.Client) int64 {
	t.Helper()
	resp, err := cli.Get(ctx, store.DefaultPrefix, clientv3.WithCountOnly())
	if err != nil {
		t.Fatalf("read the store revision: %v", err)
	}
	return resp.Header.Revision
}

// history replays every store write from revision from until now, in
// order: a watch from an old revision delivers the stored history, and a
// marker written last says where now is.
func history(ctx context.Context, t *testing.T, cli *clientv3.Client, from int64) []*clientv3.Event {
	t.Helper()
	marker := store.DefaultPrefix + "test-history-marker"
	if _, err := cli.Put(ctx, marker, time.Now().String()); err != nil {
		t.Fatalf("write the history marker: %v", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []*clientv3.Event
	for resp := range cli.Watch(wctx, store.DefaultPrefix, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithPrevKV()) {
		if err := resp.Err(); err != nil {
			t.Fatalf("replay the store history: %v", err)
		}
		for _, ev := range resp.Events {
			if string(ev.Kv.Key) == marker {
				return out
			}
			out = append(out, ev)
		}
	}
	t.Fatalf("replay the store history: %v", ctx.Err())
	return nil
}

// recordOf decodes a session record from a write in the history.
func recordOf(t *testing.T, ev *clientv3.Event) *session.Record {
	t.Helper()
	var rec session.Record
	if err := json.Unmarshal(ev.Kv.Value, &rec); err != nil {
		t.Fatalf("decode %s: %v", ev.Kv.Key, err)
	}
	return &rec
}

// TestClusterIntakeAndFailover: 30 tickets appear at once before three
// replicas; each ticket gets one openOBD session, READY, and no replica
// holds more than 60 % of them. Then a replica crashes: the two survivors
// split its sessions, re-attached with their stored tokens (no new openOBD
// session), and again hold at most 60 % each. The time from the crash to
// the last of them READY is reported, not asserted.
func TestClusterIntakeAndFailover(t *testing.T) {
	t.Parallel()
	w := newClusterWorld(t, worldOptions{})
	rs := w.startThree(t, orchestrator.Config{})
	ctx := testCtx(t)
	tickets := w.jf.Partner.Seed(clusterTickets, 12)
	sessions := rs[0].waitSessions(ctx, t, stateReady, clusterTickets)
	before := checkSpread(t, "at intake", sessions, "a", "b", "c")
	checkOneOpenOBDPerTicket(t, w, tickets)
	if n := startCalls(w); n != clusterTickets {
		t.Errorf("openOBD got %d start calls at intake, want %d", n, clusterTickets)
	}
	victim, survivors := rs[1], []clusterReplica{rs[0], rs[2]}
	orphans := ownedBy(sessions, victim.name)
	starts := startCalls(w)

	crashed := time.Now()
	victim.crash()
	readyOn(ctx, t, survivors[0].replica, orphans, "a", "c")
	took := time.Since(crashed)

	after := survivors[0].waitSessions(ctx, t, stateReady, clusterTickets)
	spread := checkSpread(t, "after the failover", after, "a", "c")
	for _, id := range orphans {
		s := survivors[0].getSession(ctx, t, id)
		if !historyHas(s, s.GetOwner(), "adopted by replica "+s.GetOwner()) {
			t.Errorf("session %s: history %v does not record its adoption", id, s.GetHistory())
		}
	}
	if n := startCalls(w); n != starts {
		t.Errorf("openOBD got %d start calls after the crash, want none (the stored tokens re-attach)", n-starts)
	}
	checkOneOpenOBDPerTicket(t, w, tickets)
	t.Logf("failover: the %d sessions of crashed replica %s READY on the survivors %.2fs after the crash (store lease TTL %s); spread %v before, %v after",
		len(orphans), victim.name, took.Seconds(), clusterLeaseTTL, before, spread)
}

// TestClusterPausedReplicaWritesNothingStale: a replica stops renewing its
// store lease but goes on acting (token rotations keep it writing). Once
// etcd ends the lease, the others adopt its sessions, and nothing it writes
// reaches the store until it has a new lease; then it rejoins and takes the
// next tickets first.
func TestClusterPausedReplicaWritesNothingStale(t *testing.T) {
	t.Parallel()
	w := newClusterWorld(t, worldOptions{openobd: fake.Options{TokenRotation: time.Second}})
	rs := w.startThree(t, orchestrator.Config{})
	ctx := testCtx(t)
	cli := w.rawClient(t)
	const n = 12
	tickets := w.jf.Partner.Seed(n, 13)
	sessions := rs[0].waitSessions(ctx, t, stateReady, n)
	paused, others := rs[2], []clusterReplica{rs[0], rs[1]}
	mine := ownedBy(sessions, paused.name)
	from := revision(ctx, t, cli) + 1

	resume := paused.store.SuspendKeepAlive()
	poll(ctx, t, "the paused replica's store lease ends", func() bool {
		_, ok, err := others[0].store.ReplicaAddress(ctx, paused.name)
		return err == nil && !ok
	})
	readyOn(ctx, t, others[0].replica, mine, "a", "b")
	// Tokens keep rotating on the paused replica's streams: wait for a
	// round of them, each a write it attempts without a lease.
	issued := len(w.jf.OpenOBD.IssuedTokens())
	poll(ctx, t, "a round of token rotations", func() bool { return len(w.jf.OpenOBD.IssuedTokens()) >= issued+2*len(mine) })

	resume()
	paused.health.wait(ctx, t, paused.name, true)
	waitRegistries(ctx, t, rs)

	// The history from the suspension: between the end of the old lease
	// (its registry entry deleted) and the new registration, nothing the
	// paused replica wrote.
	var ended, rejoined int64
	var oldLease int64
	stale := 0
	regKey := store.DefaultPrefix + "replicas/" + paused.name
	for _, ev := range history(ctx, t, cli, from) {
		key := string(ev.Kv.Key)
		switch {
		case key == regKey && ev.Type == mvccpb.DELETE && ended == 0:
			ended, oldLease = ev.Kv.ModRevision, ev.PrevKv.GetLease()
			continue
		case key == regKey && ev.Type == mvccpb.PUT && ended != 0 && rejoined == 0:
			rejoined = ev.Kv.ModRevision
			continue
		case ended == 0 || rejoined != 0 || ev.Type != mvccpb.PUT:
			continue
		}
		switch {
		case ev.Kv.Lease == oldLease:
			t.Errorf("revision %d: %s written under the ended lease", ev.Kv.ModRevision, key)
			stale++
		case strings.HasPrefix(key, store.DefaultPrefix+"sessions/") && recordOf(t, ev).Owner == paused.name:
			t.Errorf("revision %d: %s written by the paused replica without a lease", ev.Kv.ModRevision, key)
			stale++
		case strings.HasPrefix(key, store.DefaultPrefix+"claims/") && strings.Contains(string(ev.Kv.Value), `"replica":"`+paused.name+`"`):
			t.Errorf("revision %d: %s claimed by the paused replica without a lease", ev.Kv.ModRevision, key)
			stale++
		}
	}
	if ended == 0 || rejoined == 0 {
		t.Fatalf("history shows the lease ended at %d and the replica registered again at %d, want both", ended, rejoined)
	}
	t.Logf("paused replica %s: lease ended at revision %d, registered again at %d; %d stale writes; its %d sessions adopted by the others",
		paused.name, ended, rejoined, stale, len(mine))

	// It rejoins: it holds nothing, so it takes new tickets first.
	more := w.jf.Partner.Seed(3, 14)
	all := rs[0].waitSessions(ctx, t, stateReady, n+len(more))
	byTicket := map[string]string{}
	for _, s := range all {
		byTicket[s.GetTicketId()] = s.GetOwner()
	}
	got := 0
	for _, tk := range more {
		if byTicket[tk.ID] == paused.name {
			got++
		}
	}
	if got == 0 {
		t.Errorf("the new tickets went to %v, want the rejoined replica %s to take some", byTicket, paused.name)
	}
	t.Logf("the rejoined replica took %d of the %d new tickets", got, len(more))
	checkOneOpenOBDPerTicket(t, w, append(tickets, more...))
}

// TestClusterQuorumLoss: two of the three etcd members stop for 20 s
// (quorumOutage), long enough for every replica to lose its store lease
// (5 s here; the default 10 s one is lost too). From the moment a replica
// reports NOT_SERVING until the members are back it never reports SERVING;
// after it every replica
// serves again, every session is READY on its one openOBD session, no
// record was written twice, and the tokens received while the store was
// down are superseded by saved newer ones.
func TestClusterQuorumLoss(t *testing.T) {
	t.Parallel()
	w := newClusterWorld(t, worldOptions{openobd: fake.Options{TokenRotation: 2 * time.Second}})
	rs := w.startThree(t, orchestrator.Config{}, quorumLeaseTTL)
	ctx := testCtx(t)
	cli := w.rawClient(t)
	const n = 6
	tickets := w.jf.Partner.Seed(n, 15)
	sessions := rs[0].waitSessions(ctx, t, stateReady, n)
	for _, r := range rs {
		r.health.wait(ctx, t, r.name, true)
	}
	from := revision(ctx, t, cli) + 1
	starts := startCalls(w)

	down := time.Now()
	for _, m := range []int{1, 2} {
		if err := w.cluster.StopMember(m); err != nil {
			t.Fatalf("StopMember(%d): %v", m, err)
		}
	}
	issued := len(w.jf.OpenOBD.IssuedTokens())
	servings := make([]int, len(rs))
	for i, r := range rs {
		r.health.wait(ctx, t, r.name, false)
		_, servings[i] = r.health.state()
	}
	if len(w.jf.OpenOBD.IssuedTokens()) == issued {
		poll(ctx, t, "a token issued during the outage", func() bool { return len(w.jf.OpenOBD.IssuedTokens()) > issued })
	}
	// The outage lasts quorumOutage: the replicas keep asking etcd for a
	// lease all along, and their tokens keep rotating on openOBD.
	hold := time.NewTimer(quorumOutage - time.Since(down))
	select {
	case <-hold.C:
	case <-ctx.Done():
		t.Fatal("test deadline during the outage")
	}
	for i, r := range rs {
		if ok, n := r.health.state(); ok || n != servings[i] {
			t.Errorf("replica %s reported SERVING during the outage (serving now: %v)", r.name, ok)
		}
	}
	if err := w.cluster.StartMembers(ctx, 1, 2); err != nil {
		t.Fatalf("StartMembers: %v", err)
	}
	outage := time.Since(down)
	back := time.Now()
	afterOutage := len(w.jf.OpenOBD.IssuedTokens())

	for _, r := range rs {
		r.health.wait(ctx, t, r.name, true)
	}
	ids := make([]string, len(sessions))
	for i, s := range sessions {
		ids[i] = s.GetId()
	}
	readyOn(ctx, t, rs[0].replica, ids, "a", "b", "c")
	recovered := time.Since(back)
	for _, r := range rs {
		if _, err := r.client.GetSession(ctx, &orchestratorv1.GetSessionRequest{SessionId: ids[0]}); err != nil {
			t.Errorf("replica %s after the outage: GetSession = %v", r.name, err)
		}
	}
	checkOneOpenOBDPerTicket(t, w, tickets)
	if n := startCalls(w); n != starts {
		t.Errorf("openOBD got %d start calls after the outage, want none", n-starts)
	}
	// Each stored token was issued after the outage: the saves that failed
	// during it were made good by newer ones.
	for {
		// Read the stored tokens first: a token read from the store was
		// issued before the list of issued tokens is taken.
		tokens := map[string]string{}
		var stale []string
		for _, id := range ids {
			rec, err := rs[0].store.Get(ctx, id)
			if err != nil {
				stale = append(stale, id+": "+err.Error())
				continue
			}
			tokens[id] = rec.OpenOBD.Token
		}
		fresh := map[string]bool{}
		for _, tok := range w.jf.OpenOBD.IssuedTokens()[afterOutage:] {
			fresh[tok] = true
		}
		for id, tok := range tokens {
			if !fresh[tok] {
				stale = append(stale, id)
			}
		}
		if len(stale) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stored tokens not issued after the outage: %v", stale)
		case <-time.After(10 * time.Millisecond):
		}
	}
	attached := time.Since(back)
	// Nothing written twice: one record per ticket, and no history entry
	// recorded twice in any record.
	perTicket := map[string]map[string]bool{}
	for _, ev := range history(ctx, t, cli, from) {
		if ev.Type != mvccpb.PUT || !strings.HasPrefix(string(ev.Kv.Key), store.DefaultPrefix+"sessions/") {
			continue
		}
		rec := recordOf(t, ev)
		if perTicket[rec.TicketID] == nil {
			perTicket[rec.TicketID] = map[string]bool{}
		}
		perTicket[rec.TicketID][rec.ID] = true
		seen := map[string]bool{}
		for _, h := range rec.History {
			k := fmt.Sprintf("%s>%s|%s|%s|%s", h.From, h.To, h.Actor, h.Reason, h.Time.Format(time.RFC3339Nano))
			if seen[k] {
				t.Errorf("revision %d: session %s records %q twice", ev.Kv.ModRevision, rec.ID, k)
			}
			seen[k] = true
		}
	}
	for ticket, recs := range perTicket {
		if len(recs) != 1 {
			t.Errorf("ticket %s has %d session records, want 1", ticket, len(recs))
		}
	}
	t.Logf("quorum loss: 2 of 3 members down for %.2fs, every replica NOT_SERVING throughout; every replica SERVING and all %d sessions READY %.2fs after the members were back, each with a token received after the outage stored %.2fs after; 0 duplicate openOBD sessions",
		outage.Seconds(), len(ids), recovered.Seconds(), attached.Seconds())
}

// TestClusterWatchContinuity: what one replica writes, another replica's
// WatchSessions stream delivers, every revision in order, across the
// restart of an etcd member in between.
func TestClusterWatchContinuity(t *testing.T) {
	t.Parallel()
	w := newClusterWorld(t, worldOptions{})
	rs := w.startThree(t, orchestrator.Config{})
	ctx := testCtx(t)
	cli := w.rawClient(t)
	w.jf.Partner.Seed(6, 16)
	sessions := rs[0].waitSessions(ctx, t, stateReady, 6)
	writer, watcher := rs[0], rs[1]
	// The sessions the watcher does not own, written through their owner.
	var targets []*orchestratorv1.Session
	for _, s := range sessions {
		if s.GetOwner() != watcher.name && len(targets) < 2 {
			targets = append(targets, s)
		}
	}
	if len(targets) < 2 {
		t.Fatalf("sessions %v: want two not owned by %s", owners(sessions), watcher.name)
	}
	from := revision(ctx, t, cli) + 1
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := watcher.client.WatchSessions(wctx, &orchestratorv1.WatchSessionsRequest{StartRevision: from})
	if err != nil {
		t.Fatalf("WatchSessions: %v", err)
	}

	acquire := func(s *orchestratorv1.Session) string {
		t.Helper()
		acq, err := writer.client.AcquireSession(ctx, &orchestratorv1.AcquireSessionRequest{Runner: "watch-test", TicketId: s.GetTicketId()})
		if err != nil {
			t.Fatalf("AcquireSession(%s) = %v", s.GetTicketId(), err)
		}
		return acq.GetLeaseId()
	}
	lease := acquire(targets[0])
	if err := w.cluster.StopMember(0); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.client.FinishSession(ctx, &orchestratorv1.FinishSessionRequest{SessionId: targets[0].GetId(), LeaseId: lease,
		Result: &orchestratorv1.FinishResult{Codes: []orchestratorv1.ResultCode{orchestratorv1.ResultCode_RESULT_CODE_SUCCESS}}}); err != nil {
		t.Fatalf("FinishSession with a member down = %v", err)
	}
	if err := w.cluster.StartMembers(ctx, 0); err != nil {
		t.Fatal(err)
	}
	acquire(targets[1])

	// Every session write since from, as the store has them.
	var want []int64
	for _, ev := range history(ctx, t, cli, from) {
		if ev.Type == mvccpb.PUT && strings.HasPrefix(string(ev.Kv.Key), store.DefaultPrefix+"sessions/") {
			want = append(want, ev.Kv.ModRevision)
		}
	}
	var got []int64
	for len(got) < len(want) {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatalf("watch on %s after %d of %d events: %v", watcher.name, len(got), len(want), err)
		}
		got = append(got, ev.GetRevision())
	}
	if !slices.Equal(got, want) {
		t.Errorf("watch on %s delivered revisions %v, want %v (the store's session writes, in order)", watcher.name, got, want)
	}
	// The watcher's cache followed too.
	poll(ctx, t, "the watcher's cache shows the second session RUNNING and not the first", func() bool {
		resp, err := watcher.client.ListSessions(ctx, &orchestratorv1.ListSessionsRequest{
			States: []orchestratorv1.SessionState{orchestratorv1.SessionState_SESSION_STATE_RUNNING}, PageSize: 100,
		})
		if err != nil {
			return false
		}
		ids := map[string]bool{}
		for _, s := range resp.GetSessions() {
			ids[s.GetId()] = true
		}
		return ids[targets[1].GetId()] && !ids[targets[0].GetId()]
	})
}
