package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
)

func TestCreateGet(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a := openStore(t, testConfig(t, "a"))

	rec := newRecord("s1", "t1", "c1")
	rec.RequestID = "r1"
	if err := a.Create(ctx, rec); err != nil {
		t.Fatalf("Create = %v", err)
	}
	if rec.Revision == 0 || rec.Owner != "a" {
		t.Errorf("after Create: Revision = %d, Owner = %q; want > 0, %q", rec.Revision, rec.Owner, "a")
	}
	got, err := a.Get(ctx, "s1")
	if err != nil {
		t.Fatalf("Get = %v", err)
	}
	if diff := cmp.Diff(rec, got); diff != "" {
		t.Errorf("Get(s1) differs from the created record (-want +got):\n%s", diff)
	}

	for _, c := range []struct {
		kind store.ClaimKind
		id   string
	}{{store.ClaimTicket, "t1"}, {store.ClaimConnector, "c1"}, {store.ClaimRequest, "r1"}} {
		claim, ok, err := a.ClaimOf(ctx, c.kind, c.id)
		if want := (store.Claim{SessionID: "s1", Replica: "a"}); err != nil || !ok || claim != want {
			t.Errorf("ClaimOf(%s, %s) = %+v, %v, %v; want %+v, true, nil", c.kind, c.id, claim, ok, err, want)
		}
	}

	// The ticket claim is bound to the replica's lease; the request is not.
	raw := rawClient(t, endpoints)
	resp, err := raw.Get(ctx, testPrefix(t)+"claims/tickets/t1")
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease != int64(a.LeaseID()) {
		t.Errorf("ticket claim key = %v, %v; want one key on lease %x", resp.Kvs, err, a.LeaseID())
	}
	resp, err = raw.Get(ctx, testPrefix(t)+"requests/r1")
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease != 0 {
		t.Errorf("request key = %v, %v; want one key without lease", resp.Kvs, err)
	}

	if _, err := a.Get(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(nope) = %v, want ErrNotFound", err)
	}
	if _, ok, err := a.ClaimOf(ctx, store.ClaimTicket, "t2"); ok || err != nil {
		t.Errorf("ClaimOf(ticket, t2) = _, %v, %v; want false, nil", ok, err)
	}
}

func TestCreateInvalid(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a := openStore(t, testConfig(t, "a"))
	final := newRecord("s", "t", "")
	transition(t, final, session.StateFailed)
	for _, tc := range []struct {
		name string
		rec  *session.Record
	}{
		{"no id", newRecord("", "t", "c")},
		{"no target", newRecord("s", "", "")},
		{"final state", final},
		{"unspecified state", &session.Record{ID: "s", TicketID: "t"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := a.Create(ctx, tc.rec); err == nil {
				t.Errorf("Create(%+v) = nil, want an error", tc.rec)
			}
		})
	}
}

func TestCreateConflicts(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a := openStore(t, testConfig(t, "a"))
	b := openStore(t, testConfig(t, "b"))
	first := newRecord("s1", "t1", "c1")
	first.RequestID = "r1"
	if err := a.Create(ctx, first); err != nil {
		t.Fatalf("Create(s1) = %v", err)
	}

	for _, tc := range []struct {
		name string
		rec  *session.Record
		want *store.ClaimedError // nil: want ErrExists
	}{
		{"same ticket", newRecord("s2", "t1", "c2"),
			&store.ClaimedError{Kind: store.ClaimTicket, TargetID: "t1", SessionID: "s1", Replica: "a"}},
		{"same connector", newRecord("s2", "t2", "c1"),
			&store.ClaimedError{Kind: store.ClaimConnector, TargetID: "c1", SessionID: "s1", Replica: "a"}},
		{"same request", func() *session.Record { r := newRecord("s2", "t1", "c1"); r.RequestID = "r1"; return r }(),
			&store.ClaimedError{Kind: store.ClaimRequest, TargetID: "r1", SessionID: "s1", Replica: "a"}},
		{"same session id", newRecord("s1", "t3", "c3"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := b.Create(ctx, tc.rec)
			if tc.want == nil {
				if !errors.Is(err, store.ErrExists) {
					t.Errorf("Create = %v, want ErrExists", err)
				}
			} else {
				var claimed *store.ClaimedError
				if !errors.As(err, &claimed) || !errors.Is(err, store.ErrClaimed) {
					t.Fatalf("Create = %v, want a *ClaimedError", err)
				}
				if diff := cmp.Diff(tc.want, claimed); diff != "" {
					t.Errorf("Create error (-want +got):\n%s", diff)
				}
			}
			// A failed Create writes nothing: the free target stays free.
			for _, c := range []struct {
				kind store.ClaimKind
				id   string
			}{{store.ClaimTicket, tc.rec.TicketID}, {store.ClaimConnector, tc.rec.ConnectorID}} {
				if claim, ok, _ := b.ClaimOf(ctx, c.kind, c.id); ok && claim.SessionID != "s1" {
					t.Errorf("after the failed Create, ClaimOf(%s, %s) = %+v", c.kind, c.id, claim)
				}
			}
		})
	}
}

func TestCreateUnlessHeld(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a := openStore(t, testConfig(t, "a"))
	hold := store.Hold{SessionID: "s0", Actor: "engineer", Reason: "vehicle on the bench"}
	if err := a.HoldIntake(ctx, "t1", hold); err != nil {
		t.Fatalf("HoldIntake = %v", err)
	}

	err := a.Create(ctx, newRecord("s1", "t1", "c1"), store.UnlessHeld())
	var held *store.HeldError
	if !errors.As(err, &held) || !errors.Is(err, store.ErrHeld) {
		t.Fatalf("Create(UnlessHeld) of a held ticket = %v, want a *HeldError", err)
	}
	if want := (&store.HeldError{TicketID: "t1", Hold: hold}); !cmp.Equal(held, want) {
		t.Errorf("Create(UnlessHeld) error = %+v, want %+v", held, want)
	}
	if _, err := a.Get(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(s1) after the refused Create = %v, want ErrNotFound", err)
	}
	if st, err := a.Ticket(ctx, "t1"); err != nil || st.Claimed {
		t.Errorf("Ticket(t1) after the refused Create = %+v, %v; want unclaimed", st, err)
	}
	// A claimed ticket is reported as claimed, held or not.
	if err := a.Create(ctx, newRecord("s2", "t2", "c2")); err != nil {
		t.Fatalf("Create(s2) = %v", err)
	}
	if err := a.HoldIntake(ctx, "t2", hold); err != nil {
		t.Fatalf("HoldIntake = %v", err)
	}
	if err := a.Create(ctx, newRecord("s3", "t2", "c3"), store.UnlessHeld()); !errors.Is(err, store.ErrClaimed) {
		t.Errorf("Create(UnlessHeld) of a claimed, held ticket = %v, want ErrClaimed", err)
	}

	// Without the option the hold is not looked at (StartSession lifts it).
	if err := a.Create(ctx, newRecord("s4", "t1", "c1")); err != nil {
		t.Errorf("Create of a held ticket without UnlessHeld = %v, want nil", err)
	}
	// Released, the ticket is created with the option too.
	if err := a.ReleaseIntakeHold(ctx, "t5"); err != nil {
		t.Fatalf("ReleaseIntakeHold = %v", err)
	}
	if err := a.HoldIntake(ctx, "t5", hold); err != nil {
		t.Fatalf("HoldIntake = %v", err)
	}
	if err := a.ReleaseIntakeHold(ctx, "t5"); err != nil {
		t.Fatalf("ReleaseIntakeHold = %v", err)
	}
	if err := a.Create(ctx, newRecord("s5", "t5", "c5"), store.UnlessHeld()); err != nil {
		t.Errorf("Create(UnlessHeld) after the hold was released = %v, want nil", err)
	}
}

func TestCreateRace(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	replicas := []*store.Store{openStore(t, testConfig(t, "a")), openStore(t, testConfig(t, "b"))}

	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			rec := newRecord("s"+string(rune('0'+i)), "t1", "c"+string(rune('0'+i)))
			errs[i] = replicas[i%2].Create(ctx, rec)
		})
	}
	wg.Wait()

	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("Creates %d and %d both won ticket t1", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("no Create won ticket t1: %v", errs)
	}
	want := &store.ClaimedError{Kind: store.ClaimTicket, TargetID: "t1",
		SessionID: "s" + string(rune('0'+winner)), Replica: replicas[winner%2].Replica()}
	for i, err := range errs {
		if i == winner {
			continue
		}
		var claimed *store.ClaimedError
		if !errors.As(err, &claimed) {
			t.Errorf("Create %d = %v, want a *ClaimedError", i, err)
		} else if diff := cmp.Diff(want, claimed); diff != "" {
			t.Errorf("Create %d error (-want +got):\n%s", i, diff)
		}
	}
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a := openStore(t, testConfig(t, "a"))
	rec := newRecord("s1", "t1", "c1")
	if err := a.Create(ctx, rec); err != nil {
		t.Fatalf("Create = %v", err)
	}
	stale := rec.Clone()

	transition(t, rec, session.StateStarting)
	created := rec.Revision
	if err := a.Update(ctx, rec); err != nil {
		t.Fatalf("Update = %v", err)
	}
	if rec.Revision <= created {
		t.Errorf("Revision after Update = %d, want > %d", rec.Revision, created)
	}
	got, err := a.Get(ctx, "s1")
	if err != nil || got.State != session.StateStarting || got.Revision != rec.Revision {
		t.Errorf("Get = %+v, %v; want STARTING at revision %d", got, err, rec.Revision)
	}

	transition(t, stale, session.StateFailed)
	if err := a.Update(ctx, stale); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Update(stale) = %v, want ErrConflict", err)
	}
	if _, ok, _ := a.ClaimOf(ctx, store.ClaimTicket, "t1"); !ok {
		t.Error("a conflicting final Update released the ticket claim")
	}

	missing := newRecord("nope", "t1", "c1")
	missing.Revision = rec.Revision
	if err := a.Update(ctx, missing); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Update(nope) = %v, want ErrNotFound", err)
	}
	unread := newRecord("s1", "t1", "c1")
	if err := a.Update(ctx, unread); err == nil {
		t.Error("Update of a record without revision = nil, want an error")
	}
}

func TestUpdateFinalReleasesClaims(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a := openStore(t, testConfig(t, "a"))
	rec := newRecord("s1", "t1", "c1")
	rec.RequestID = "r1"
	if err := a.Create(ctx, rec); err != nil {
		t.Fatalf("Create = %v", err)
	}
	transition(t, rec, session.StateInterrupted)
	if err := a.Update(ctx, rec); err != nil {
		t.Fatalf("Update(INTERRUPTED) = %v", err)
	}
	for _, kind := range []store.ClaimKind{store.ClaimTicket, store.ClaimConnector} {
		if claim, ok, err := a.ClaimOf(ctx, kind, map[store.ClaimKind]string{store.ClaimTicket: "t1", store.ClaimConnector: "c1"}[kind]); ok || err != nil {
			t.Errorf("ClaimOf(%s) after the final Update = %+v, %v, %v; want none", kind, claim, ok, err)
		}
	}
	// The request id still leads to the session it created.
	if claim, ok, err := a.ClaimOf(ctx, store.ClaimRequest, "r1"); !ok || err != nil || claim.SessionID != "s1" {
		t.Errorf("ClaimOf(request, r1) = %+v, %v, %v; want s1", claim, ok, err)
	}
	retry := newRecord("s2", "t1", "c1")
	retry.RequestID = "r1"
	var claimed *store.ClaimedError
	if err := a.Create(ctx, retry); !errors.As(err, &claimed) || claimed.SessionID != "s1" {
		t.Errorf("Create with the used request id = %v, want a *ClaimedError naming s1", err)
	}
	live, _, err := a.ListLive(ctx)
	if err != nil || len(live) != 0 {
		t.Errorf("ListLive = %d records, %v; want none", len(live), err)
	}

	// The ticket and connector are free for a new session.
	if err := a.Create(ctx, newRecord("s2", "t1", "c1")); err != nil {
		t.Errorf("Create(s2) on the released targets = %v", err)
	}
	// The ended record is immutable.
	got, err := a.Get(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	got.Reason = "changed"
	if err := a.Update(ctx, got); !errors.Is(err, store.ErrFinal) {
		t.Errorf("Update of a final record = %v, want ErrFinal", err)
	}
	if err := a.Adopt(ctx, got); !errors.Is(err, store.ErrFinal) {
		t.Errorf("Adopt of a final record = %v, want ErrFinal", err)
	}
}

// TestFencing is the paused-replica story: A's lease ends, B adopts A's
// session, and A can no longer write it.
func TestFencing(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	cfgA := testConfig(t, "a")
	cfgA.LeaseTTL = time.Second // A notices the loss within a second
	a := openStore(t, cfgA)
	b := openStore(t, testConfig(t, "b"))

	rec := newRecord("s1", "t1", "c1")
	if err := a.Create(ctx, rec); err != nil {
		t.Fatalf("A.Create = %v", err)
	}
	// While A holds the claims, B cannot take the session.
	fresh, err := b.Get(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	var claimed *store.ClaimedError
	if err := b.Adopt(ctx, fresh.Clone()); !errors.As(err, &claimed) || claimed.Replica != "a" {
		t.Fatalf("B.Adopt while A holds the claims = %v, want a *ClaimedError naming replica a", err)
	}

	// A pauses past its lease.
	if _, err := rawClient(t, endpoints).Revoke(ctx, a.LeaseID()); err != nil {
		t.Fatalf("Revoke = %v", err)
	}
	paused := rec.Clone()
	transition(t, paused, session.StateStarting)
	if err := a.Update(ctx, paused.Clone()); !errors.Is(err, store.ErrFenced) {
		t.Errorf("A.Update after its lease ended = %v, want ErrFenced", err)
	}

	if err := b.Adopt(ctx, fresh); err != nil {
		t.Fatalf("B.Adopt = %v", err)
	}
	if fresh.Owner != "b" {
		t.Errorf("Owner after B.Adopt = %q, want b", fresh.Owner)
	}
	if claim, _, _ := b.ClaimOf(ctx, store.ClaimConnector, "c1"); claim.Replica != "b" {
		t.Errorf("connector claim after B.Adopt = %+v, want replica b", claim)
	}

	if err := a.Update(ctx, paused); !errors.Is(err, store.ErrFenced) {
		t.Errorf("A.Update after B adopted = %v, want ErrFenced", err)
	}
	transition(t, fresh, session.StateStarting)
	if err := b.Update(ctx, fresh); err != nil {
		t.Errorf("B.Update = %v", err)
	}

	select {
	case <-a.Lost():
	case <-ctx.Done():
		t.Fatal("A.Lost() not closed after its lease was revoked")
	}
	if err := a.Create(ctx, newRecord("s2", "t2", "")); !errors.Is(err, store.ErrFenced) {
		t.Errorf("A.Create after losing its lease = %v, want ErrFenced", err)
	}
	select {
	case <-b.Lost():
		t.Error("B.Lost() closed")
	default:
	}
}

// TestAdoptAfterRestart restarts replica A without revoking its lease, as a
// crash would: the new process adopts A's sessions, no one else can.
func TestAdoptAfterRestart(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	old, err := store.Open(ctx, testConfig(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range []*session.Record{newRecord("s1", "t1", "c1"), newRecord("s2", "t2", "")} {
		if err := old.Create(ctx, rec); err != nil {
			t.Fatalf("Create(%s) = %v", rec.ID, err)
		}
	}
	oldLease := old.LeaseID()
	if err := old.Detach(); err != nil {
		t.Fatalf("Detach = %v", err)
	}

	a := openStore(t, testConfig(t, "a"))
	b := openStore(t, testConfig(t, "b"))
	live, _, err := a.ListLive(ctx)
	if err != nil || len(live) != 2 {
		t.Fatalf("ListLive = %d records, %v; want 2", len(live), err)
	}
	for _, rec := range live {
		var claimed *store.ClaimedError
		if err := b.Adopt(ctx, rec.Clone()); !errors.As(err, &claimed) || claimed.Replica != "a" {
			t.Errorf("B.Adopt(%s) = %v, want a *ClaimedError naming replica a", rec.ID, err)
		}
		if err := a.Adopt(ctx, rec); err != nil {
			t.Fatalf("A.Adopt(%s) = %v", rec.ID, err)
		}
	}
	// The claims now hang on the new lease: the old one may go.
	raw := rawClient(t, endpoints)
	if _, err := raw.Revoke(ctx, oldLease); err != nil {
		t.Fatalf("Revoke(old lease) = %v", err)
	}
	for _, target := range []string{"tickets/t1", "connectors/c1", "tickets/t2"} {
		resp, err := raw.Get(ctx, testPrefix(t)+"claims/"+target)
		if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease != int64(a.LeaseID()) {
			t.Errorf("claim %s = %v, %v; want it on the new lease %x", target, resp.Kvs, err, a.LeaseID())
		}
	}
	transition(t, live[0], session.StateStarting)
	if err := a.Update(ctx, live[0]); err != nil {
		t.Errorf("Update after Adopt = %v", err)
	}
	// Adopt is idempotent for the owner.
	if err := a.Adopt(ctx, live[1]); err != nil {
		t.Errorf("second Adopt = %v", err)
	}
	stale := live[0].Clone()
	stale.Revision--
	if err := a.Adopt(ctx, stale); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Adopt of a stale record = %v, want ErrConflict", err)
	}
}

// TestOrphan: a replica dies; its claims go with its lease, but its live
// session keeps its ticket and connector until a replica adopts or ends it.
func TestOrphan(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a, err := store.Open(ctx, testConfig(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Create(ctx, newRecord("s1", "t1", "c1")); err != nil {
		t.Fatal(err)
	}
	lease := a.LeaseID()
	if err := a.Detach(); err != nil {
		t.Fatal(err)
	}
	if _, err := rawClient(t, endpoints).Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}

	b := openStore(t, testConfig(t, "b"))
	if claim, ok, err := b.ClaimOf(ctx, store.ClaimTicket, "t1"); err != nil || !ok || claim != (store.Claim{SessionID: "s1"}) {
		t.Errorf("ClaimOf(ticket t1) of the orphan = %+v, %v, %v; want s1 without replica", claim, ok, err)
	}
	for _, tc := range []struct {
		rec  *session.Record
		want *store.ClaimedError
	}{
		{newRecord("s2", "t1", "c2"), &store.ClaimedError{Kind: store.ClaimTicket, TargetID: "t1", SessionID: "s1"}},
		{newRecord("s2", "t2", "c1"), &store.ClaimedError{Kind: store.ClaimConnector, TargetID: "c1", SessionID: "s1"}},
	} {
		var claimed *store.ClaimedError
		if err := b.Create(ctx, tc.rec); !errors.As(err, &claimed) {
			t.Errorf("Create(%s on %s, %s) = %v, want a *ClaimedError", tc.rec.ID, tc.rec.TicketID, tc.rec.ConnectorID, err)
		} else if diff := cmp.Diff(tc.want, claimed); diff != "" {
			t.Errorf("Create(%s on %s, %s) error (-want +got):\n%s", tc.rec.ID, tc.rec.TicketID, tc.rec.ConnectorID, diff)
		}
	}

	rec, err := b.Get(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Adopt(ctx, rec); err != nil {
		t.Fatalf("B.Adopt(orphan) = %v", err)
	}
	if claim, _, _ := b.ClaimOf(ctx, store.ClaimTicket, "t1"); claim != (store.Claim{SessionID: "s1", Replica: "b"}) {
		t.Errorf("ClaimOf(ticket t1) after Adopt = %+v, want s1 of replica b", claim)
	}
	transition(t, rec, session.StateInterrupted)
	if err := b.Update(ctx, rec); err != nil {
		t.Fatalf("Update(INTERRUPTED) = %v", err)
	}
	if err := b.Create(ctx, newRecord("s2", "t1", "c1")); err != nil {
		t.Errorf("Create on the targets of the ended orphan = %v", err)
	}
}

func TestCloseReleasesClaims(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a, err := store.Open(ctx, testConfig(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Create(ctx, newRecord("s1", "t1", "c1")); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	// The session is orphaned at once, not after the lease TTL.
	b := openStore(t, testConfig(t, "b"))
	if claim, _, err := b.ClaimOf(ctx, store.ClaimTicket, "t1"); err != nil || claim.Replica != "" {
		t.Errorf("ClaimOf(ticket t1) after Close = %+v, %v; want no replica", claim, err)
	}
	rec, err := b.Get(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Adopt(ctx, rec); err != nil {
		t.Errorf("B.Adopt after A closed = %v", err)
	}
}

func TestContextCanceled(t *testing.T) {
	t.Parallel()
	a := openStore(t, testConfig(t, "a"))
	ctx, cancel := context.WithCancel(testContext(t))
	rec := newRecord("s1", "t1", "c1")
	if err := a.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	cancel()
	calls := map[string]func() error{
		"Create":   func() error { return a.Create(ctx, newRecord("s2", "t2", "")) },
		"Get":      func() error { _, err := a.Get(ctx, "s1"); return err },
		"Update":   func() error { return a.Update(ctx, rec) },
		"Adopt":    func() error { return a.Adopt(ctx, rec) },
		"ClaimOf":  func() error { _, _, err := a.ClaimOf(ctx, store.ClaimTicket, "t1"); return err },
		"List":     func() error { _, _, err := a.List(ctx, store.Filter{}, 10, ""); return err },
		"ListLive": func() error { _, _, err := a.ListLive(ctx); return err },
		"Revision": func() error { _, err := a.Revision(ctx); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context = %v, want context.Canceled", name, err)
		}
	}
}

func TestOpenInvalid(t *testing.T) {
	t.Parallel()
	_, err := store.Open(testContext(t), store.Config{})
	if err == nil || !strings.Contains(err.Error(), "Endpoints") || !strings.Contains(err.Error(), "Replica") {
		t.Errorf("Open(Config{}) = %v, want errors naming Endpoints and Replica", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	start := time.Now()
	_, err := store.Open(testContext(t), store.Config{
		Endpoints:   []string{"unix://" + t.TempDir() + "/none.sock"},
		Replica:     "a",
		DialTimeout: 200 * time.Millisecond,
	})
	if err == nil {
		t.Fatal("Open(unreachable) = nil, want an error")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open(unreachable) took %v despite DialTimeout 200ms", d)
	}
}

// TestClaimValueIsJSON: claims are compared by value, so the hand-built
// encoding of a claim must be encoding/json's, byte for byte.
func TestClaimValueIsJSON(t *testing.T) {
	for _, replica := range []string{"a", "obd-1.example", `we"ird<&>`, "réplica", ""} {
		for _, id := range []string{"0f3c2a1e-5b7d-4c9e-8a6f-1d2e3f4a5b6c", "s1", "id with space", `q"uote`, "<script>", "é", ""} {
			want, err := json.Marshal(store.Claim{SessionID: id, Replica: replica})
			if err != nil {
				t.Fatal(err)
			}
			if got := store.ClaimValue(replica, id); got != string(want) {
				t.Errorf("ClaimValue(%q, %q) = %s, want %s", replica, id, got, want)
			}
		}
	}
}
