package store

import (
	"context"
	"encoding/json"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/obdorch/obdorch/orchestrator/session"
)

// Hold keeps intake away from a ticket: an engineer interrupted its session
// through the control plane, and only a new StartSession for the ticket
// lifts it. Holds are not bound to a lease.
type Hold struct {
	SessionID string `json:"session_id"`
	Actor     string `json:"actor"`
	Reason    string `json:"reason"`
}

// TicketState is what intake needs to know about a ticket before it creates
// a session for it.
type TicketState struct {
	// Claimed: a live session (owned or orphaned) holds the ticket.
	Claimed bool
	// Hold is set when intake must leave the ticket alone.
	Hold *Hold
}

func (s *Store) holdKey(ticketID string) string   { return s.prefix + "holds/tickets/" + ticketID }
func (s *Store) latestKey(ticketID string) string { return s.prefix + "latest/tickets/" + ticketID }

// Ticket reads, in one transaction, whether the ticket is claimed and
// whether intake is held off it.
func (s *Store) Ticket(ctx context.Context, ticketID string) (TicketState, error) {
	t := target{ClaimTicket, ticketID}
	resp, err := s.client.Txn(ctx).Then(
		clientv3.OpGet(s.claimKey(ClaimTicket, ticketID), clientv3.WithCountOnly()),
		clientv3.OpGet(s.liveTargetKey(t), clientv3.WithCountOnly()),
		clientv3.OpGet(s.holdKey(ticketID)),
	).Commit()
	if err != nil {
		return TicketState{}, fmt.Errorf("store: read ticket %s: %w", ticketID, err)
	}
	var st TicketState
	st.Claimed = resp.Responses[0].GetResponseRange().Count > 0 || resp.Responses[1].GetResponseRange().Count > 0
	if kvs := resp.Responses[2].GetResponseRange().Kvs; len(kvs) > 0 {
		h, err := decodeHold(kvs[0])
		if err != nil {
			return TicketState{}, err
		}
		st.Hold = &h
	}
	return st, nil
}

func decodeHold(kv *mvccpb.KeyValue) (Hold, error) {
	var h Hold
	if err := json.Unmarshal(kv.Value, &h); err != nil {
		return Hold{}, fmt.Errorf("store: decode %s: %w", kv.Key, err)
	}
	return h, nil
}

// HoldIntake keeps intake away from the ticket until ReleaseIntakeHold.
func (s *Store) HoldIntake(ctx context.Context, ticketID string, h Hold) error {
	b, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("store: encode hold: %w", err)
	}
	if _, err := s.client.Put(ctx, s.holdKey(ticketID), string(b)); err != nil {
		return fmt.Errorf("store: hold ticket %s: %w", ticketID, err)
	}
	return nil
}

// ReleaseIntakeHold lets intake take the ticket again; releasing a ticket
// without a hold does nothing.
func (s *Store) ReleaseIntakeHold(ctx context.Context, ticketID string) error {
	if _, err := s.client.Delete(ctx, s.holdKey(ticketID)); err != nil {
		return fmt.Errorf("store: release hold of ticket %s: %w", ticketID, err)
	}
	return nil
}

// Latest returns the newest session record created for the ticket, and
// whether there is one.
func (s *Store) Latest(ctx context.Context, ticketID string) (*session.Record, bool, error) {
	resp, err := s.client.Get(ctx, s.latestKey(ticketID))
	if err != nil {
		return nil, false, fmt.Errorf("store: read latest session of ticket %s: %w", ticketID, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	rec, err := s.Get(ctx, string(resp.Kvs[0].Value))
	if err != nil {
		return nil, false, err
	}
	return rec, true, nil
}
