package store

import (
	"context"
	"encoding/json"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/obdorch/obdorch/orchestrator/session"
)

// ClaimKind says what a claim holds.
type ClaimKind string

// The kinds of claims.
const (
	ClaimTicket    ClaimKind = "ticket"
	ClaimConnector ClaimKind = "connector"
	// ClaimRequest is the request id of a StartSession call: it maps to the
	// session the request created and is not bound to a lease.
	ClaimRequest ClaimKind = "request"
)

// dir returns the key directory of the kind under claims/ and live/.
func (k ClaimKind) dir() string {
	switch k {
	case ClaimTicket:
		return "tickets/"
	case ClaimConnector:
		return "connectors/"
	}
	return string(k) + "s/"
}

// Claim is the value of a claim key.
type Claim struct {
	SessionID string `json:"session_id"`
	// Replica is the replica holding the claim. ClaimOf reports an empty
	// Replica for an orphaned session: its owner's lease ended and no
	// replica has adopted it yet.
	Replica string `json:"replica"`
}

// target is a ticket or connector a record claims.
type target struct {
	kind ClaimKind
	id   string
}

// targets returns the ticket and connector of rec.
func targets(rec *session.Record) []target {
	ts := make([]target, 0, 2)
	if rec.TicketID != "" {
		ts = append(ts, target{ClaimTicket, rec.TicketID})
	}
	if rec.ConnectorID != "" {
		ts = append(ts, target{ClaimConnector, rec.ConnectorID})
	}
	return ts
}

func (s *Store) sessionKey(id string) string { return s.prefix + "sessions/" + id }

// liveKey indexes the live session id.
func (s *Store) liveKey(id string) string { return s.prefix + "live/sessions/" + id }

// claimKey is the lease-bound claim on a target, or a request id.
func (s *Store) claimKey(kind ClaimKind, id string) string {
	if kind == ClaimRequest {
		return s.prefix + "requests/" + id
	}
	return s.prefix + "claims/" + kind.dir() + id
}

// liveTargetKey names the live session of a target. Unlike the claim, it
// outlives its owner's lease, so no second session starts on a target
// while an orphaned one is live.
func (s *Store) liveTargetKey(t target) string { return s.prefix + "live/" + t.kind.dir() + t.id }

// claimValue is this replica's claim for session id: Claim in JSON.
// Claims are compared by value in transactions, so it must encode the same
// way every time. Session ids made of letters, digits and dashes (as the
// core makes them) are quoted as they are, which is how encoding/json
// writes them, around the replica's part encoded once; any other id goes
// through encoding/json.
func (s *Store) claimValue(id string) string {
	if !plainJSON(id) {
		b, _ := json.Marshal(Claim{SessionID: id, Replica: s.replica})
		return string(b)
	}
	return `{"session_id":"` + id + s.claimTail
}

// claimTail is what follows the session id in every claim of replica.
func claimTail(replica string) string {
	b, _ := json.Marshal(replica)
	return `","replica":` + string(b) + `}`
}

// plainJSON reports whether encoding/json writes s as it is between quotes.
func plainJSON(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// encode returns rec as stored by this replica, which becomes its owner.
func (s *Store) encode(rec *session.Record) (string, error) {
	c := *rec
	c.Owner = s.replica
	b, err := json.Marshal(&c)
	if err != nil {
		return "", fmt.Errorf("store: encode session %s: %w", rec.ID, err)
	}
	return string(b), nil
}

func decodeRecord(kv *mvccpb.KeyValue) (*session.Record, error) {
	var rec session.Record
	if err := json.Unmarshal(kv.Value, &rec); err != nil {
		return nil, fmt.Errorf("store: decode %s: %w", kv.Key, err)
	}
	rec.Revision = kv.ModRevision
	return &rec, nil
}

func decodeClaim(kv *mvccpb.KeyValue) (Claim, error) {
	var c Claim
	if err := json.Unmarshal(kv.Value, &c); err != nil {
		return Claim{}, fmt.Errorf("store: decode %s: %w", kv.Key, err)
	}
	return c, nil
}

// validate checks what every write needs of rec.
func validate(op string, rec *session.Record) error {
	switch {
	case rec.ID == "":
		return fmt.Errorf("store: %s session: empty id", op)
	case len(targets(rec)) == 0:
		return fmt.Errorf("store: %s session %s: neither ticket nor connector set", op, rec.ID)
	case rec.State.Live() || rec.State.Final():
		return nil
	}
	return fmt.Errorf("store: %s session %s: invalid state %s", op, rec.ID, rec.State)
}

// CreateOption changes what Create checks.
type CreateOption func(*createOptions)

type createOptions struct {
	unlessHeld bool
}

// UnlessHeld makes Create also check, in its transaction, that intake is not
// held off the record's ticket (HoldIntake): a held ticket fails with a
// *HeldError and nothing is written. Intake creates records this way, so a
// hold put at any moment is never overtaken.
func UnlessHeld() CreateOption { return func(o *createOptions) { o.unlessHeld = true } }

// Create writes the new, live record rec and, in the same transaction,
// claims its ticket and connector for this replica and records its request
// id. If the request id is known, a target is claimed, or a live session
// holds a target (even an orphaned one), it writes nothing and returns a
// *ClaimedError naming that session; a retried request thus learns its
// session from the error. On success it sets rec.Owner and rec.Revision.
func (s *Store) Create(ctx context.Context, rec *session.Record, opts ...CreateOption) error {
	var o createOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := validate("create", rec); err != nil {
		return err
	}
	if !rec.State.Live() {
		return fmt.Errorf("store: create session %s: state %s is not live", rec.ID, rec.State)
	}
	lease, err := s.currentLease()
	if err != nil {
		return err
	}
	data, err := s.encode(rec)
	if err != nil {
		return err
	}
	claim := s.claimValue(rec.ID)

	// The keys that must be absent, in the order their conflicts are
	// reported: a retried request first, then the claims, then the live
	// sessions of the targets, then the session id itself.
	type check struct {
		key    string
		target target
		orphan bool // a live target key: its value is the session id
		hold   bool // the ticket's intake hold
	}
	var (
		checks []check
		ops    []clientv3.Op
	)
	if rec.RequestID != "" {
		k := s.claimKey(ClaimRequest, rec.RequestID)
		checks = append(checks, check{key: k, target: target{ClaimRequest, rec.RequestID}})
		ops = append(ops, clientv3.OpPut(k, claim))
	}
	ts := targets(rec)
	for _, t := range ts {
		k := s.claimKey(t.kind, t.id)
		checks = append(checks, check{key: k, target: t})
		ops = append(ops, clientv3.OpPut(k, claim, clientv3.WithLease(lease)))
	}
	for _, t := range ts {
		k := s.liveTargetKey(t)
		checks = append(checks, check{key: k, target: t, orphan: true})
		ops = append(ops, clientv3.OpPut(k, rec.ID))
	}
	key := s.sessionKey(rec.ID)
	checks = append(checks, check{key: key})
	if o.unlessHeld && rec.TicketID != "" {
		checks = append(checks, check{key: s.holdKey(rec.TicketID), target: target{ClaimTicket, rec.TicketID}, hold: true})
	}
	ops = append(ops, clientv3.OpPut(key, data), clientv3.OpPut(s.liveKey(rec.ID), ""))
	if rec.TicketID != "" {
		ops = append(ops, clientv3.OpPut(s.latestKey(rec.TicketID), rec.ID))
	}

	conds := make([]clientv3.Cmp, len(checks))
	gets := make([]clientv3.Op, len(checks))
	for i, c := range checks {
		conds[i] = clientv3.Compare(clientv3.CreateRevision(c.key), "=", 0)
		gets[i] = clientv3.OpGet(c.key)
	}
	resp, err := s.client.Txn(ctx).If(conds...).Then(ops...).Else(gets...).Commit()
	if err != nil {
		return s.etcdError("create", rec.ID, err)
	}
	if resp.Succeeded {
		rec.Owner, rec.Revision = s.replica, resp.Header.Revision
		return nil
	}
	for i, r := range resp.Responses {
		kvs := r.GetResponseRange().Kvs
		if len(kvs) == 0 {
			continue
		}
		c := checks[i]
		switch {
		case c.key == key:
			return fmt.Errorf("%w: %s", ErrExists, rec.ID)
		case c.hold:
			h, err := decodeHold(kvs[0])
			if err != nil {
				return err
			}
			return &HeldError{TicketID: rec.TicketID, Hold: h}
		case c.orphan:
			return &ClaimedError{Kind: c.target.kind, TargetID: c.target.id, SessionID: string(kvs[0].Value)}
		}
		held, err := decodeClaim(kvs[0])
		if err != nil {
			return err
		}
		return &ClaimedError{Kind: c.target.kind, TargetID: c.target.id, SessionID: held.SessionID, Replica: held.Replica}
	}
	return fmt.Errorf("%w: create session %s", ErrConflict, rec.ID)
}

// Get reads the record of session id, with its Revision.
func (s *Store) Get(ctx context.Context, id string) (*session.Record, error) {
	resp, err := s.client.Get(ctx, s.sessionKey(id))
	if err != nil {
		return nil, s.etcdError("get", id, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return decodeRecord(resp.Kvs[0])
}

// ClaimOf returns the claim on a ticket, connector or request id, and
// whether there is one. A ticket or connector of an orphaned live session
// (see Claim) counts as claimed, with an empty Replica.
func (s *Store) ClaimOf(ctx context.Context, kind ClaimKind, targetID string) (Claim, bool, error) {
	gets := []clientv3.Op{clientv3.OpGet(s.claimKey(kind, targetID))}
	if kind != ClaimRequest {
		gets = append(gets, clientv3.OpGet(s.liveTargetKey(target{kind, targetID})))
	}
	resp, err := s.client.Txn(ctx).Then(gets...).Commit()
	if err != nil {
		return Claim{}, false, fmt.Errorf("store: read %s claim %s: %w", kind, targetID, err)
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		c, err := decodeClaim(kvs[0])
		return c, err == nil, err
	}
	if len(resp.Responses) > 1 {
		if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			return Claim{SessionID: string(kvs[0].Value)}, true, nil
		}
	}
	return Claim{}, false, nil
}

// Update writes rec if the stored record still has revision rec.Revision
// (else ErrConflict) and this replica still holds the record's claims with
// its current lease (else ErrFenced). A final record cannot be updated
// (ErrFinal). When rec.State is final, the same transaction releases the
// claims and the live-session keys of the ticket and connector, so a new
// session can start on them. On success it sets rec.Owner and rec.Revision.
func (s *Store) Update(ctx context.Context, rec *session.Record) error {
	if err := validate("update", rec); err != nil {
		return err
	}
	if rec.Revision <= 0 {
		return fmt.Errorf("store: update session %s: no revision: read the record first", rec.ID)
	}
	lease, err := s.currentLease()
	if err != nil {
		return err
	}
	data, err := s.encode(rec)
	if err != nil {
		return err
	}
	key, claim := s.sessionKey(rec.ID), s.claimValue(rec.ID)
	final := rec.State.Final()

	ts := targets(rec)
	conds := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rec.Revision)}
	ops := []clientv3.Op{clientv3.OpPut(key, data)}
	gets := []clientv3.Op{clientv3.OpGet(key)}
	for _, t := range ts {
		k := s.claimKey(t.kind, t.id)
		conds = append(conds,
			clientv3.Compare(clientv3.Value(k), "=", claim),
			clientv3.Compare(clientv3.LeaseValue(k), "=", lease))
		gets = append(gets, clientv3.OpGet(k))
		if final {
			ops = append(ops, clientv3.OpDelete(k), clientv3.OpDelete(s.liveTargetKey(t)))
		}
	}
	if final {
		ops = append(ops, clientv3.OpDelete(s.liveKey(rec.ID)))
	}
	resp, err := s.client.Txn(ctx).If(conds...).Then(ops...).Else(gets...).Commit()
	if err != nil {
		return s.etcdError("update", rec.ID, err)
	}
	if !resp.Succeeded {
		stored, claims, err := s.failed(rec.ID, resp)
		if err != nil {
			return err
		}
		for i, kv := range claims {
			if kv == nil || string(kv.Value) != claim || clientv3.LeaseID(kv.Lease) != lease {
				return fmt.Errorf("%w: session %s: %s %s claim lost", ErrFenced, rec.ID, ts[i].kind, ts[i].id)
			}
		}
		return fmt.Errorf("%w: session %s at revision %d, not %d", ErrConflict, rec.ID, stored.Revision, rec.Revision)
	}
	rec.Owner, rec.Revision = s.replica, resp.Header.Revision
	return nil
}

// Adopt makes this replica the owner of the live record rec: in one
// transaction, conditioned on rec.Revision, it binds the record's claims to
// this replica's lease and writes rec with Owner set to this replica. It
// takes claims that are absent (their owner's lease ended) or held for this
// session by an earlier process of the same replica name; a claim held by
// any other replica or session gives a *ClaimedError. On success it sets
// rec.Owner and rec.Revision.
func (s *Store) Adopt(ctx context.Context, rec *session.Record) error {
	if err := validate("adopt", rec); err != nil {
		return err
	}
	if rec.State.Final() {
		return fmt.Errorf("%w: adopt session %s in state %s", ErrFinal, rec.ID, rec.State)
	}
	if rec.Revision <= 0 {
		return fmt.Errorf("store: adopt session %s: no revision: read the record first", rec.ID)
	}
	lease, err := s.currentLease()
	if err != nil {
		return err
	}
	data, err := s.encode(rec)
	if err != nil {
		return err
	}
	key, claim := s.sessionKey(rec.ID), s.claimValue(rec.ID)
	ts := targets(rec)

	// Read the claims, then take them on condition they have not changed.
	reads := make([]clientv3.Op, len(ts))
	for i, t := range ts {
		reads[i] = clientv3.OpGet(s.claimKey(t.kind, t.id))
	}
	held, err := s.client.Txn(ctx).Then(reads...).Commit()
	if err != nil {
		return s.etcdError("adopt", rec.ID, err)
	}
	conds := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rec.Revision)}
	ops := []clientv3.Op{clientv3.OpPut(key, data)}
	gets := []clientv3.Op{clientv3.OpGet(key)}
	for i, t := range ts {
		k := s.claimKey(t.kind, t.id)
		kvs := held.Responses[i].GetResponseRange().Kvs
		if len(kvs) == 0 {
			conds = append(conds, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
		} else {
			if err := s.adoptable(rec.ID, t, kvs[0]); err != nil {
				return err
			}
			conds = append(conds, clientv3.Compare(clientv3.ModRevision(k), "=", kvs[0].ModRevision))
		}
		ops = append(ops, clientv3.OpPut(k, claim, clientv3.WithLease(lease)))
		gets = append(gets, clientv3.OpGet(k))
	}
	resp, err := s.client.Txn(ctx).If(conds...).Then(ops...).Else(gets...).Commit()
	if err != nil {
		return s.etcdError("adopt", rec.ID, err)
	}
	if !resp.Succeeded {
		stored, claims, err := s.failed(rec.ID, resp)
		if err != nil {
			return err
		}
		for i, kv := range claims {
			if kv == nil {
				continue
			}
			if err := s.adoptable(rec.ID, ts[i], kv); err != nil {
				return err
			}
		}
		return fmt.Errorf("%w: session %s at revision %d, not %d", ErrConflict, rec.ID, stored.Revision, rec.Revision)
	}
	rec.Owner, rec.Revision = s.replica, resp.Header.Revision
	return nil
}

// adoptable reports whether this replica may take over the claim kv of
// session id: only if an earlier process of the same name holds it for the
// same session.
func (s *Store) adoptable(id string, t target, kv *mvccpb.KeyValue) error {
	c, err := decodeClaim(kv)
	if err != nil {
		return err
	}
	if c.SessionID != id || c.Replica != s.replica {
		return &ClaimedError{Kind: t.kind, TargetID: t.id, SessionID: c.SessionID, Replica: c.Replica}
	}
	return nil
}

// failed interprets the Else branch of a failed Update or Adopt: the stored
// record first, then the record's claims (nil where absent). It returns an
// error if the record is missing or final.
func (s *Store) failed(id string, resp *clientv3.TxnResponse) (*session.Record, []*mvccpb.KeyValue, error) {
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	stored, err := decodeRecord(kvs[0])
	if err != nil {
		return nil, nil, err
	}
	if stored.State.Final() {
		return nil, nil, fmt.Errorf("%w: session %s is %s", ErrFinal, id, stored.State)
	}
	claims := make([]*mvccpb.KeyValue, len(resp.Responses)-1)
	for i, r := range resp.Responses[1:] {
		if kvs := r.GetResponseRange().Kvs; len(kvs) > 0 {
			claims[i] = kvs[0]
		}
	}
	return stored, claims, nil
}
