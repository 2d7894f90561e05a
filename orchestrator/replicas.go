package orchestrator

import (
	"context"

	"github.com/obdorch/obdorch/orchestrator/session"
)

// notOwner is the NotOwnerError for a session that owner holds, with the
// owner's advertised address from the replica registry when it is there.
// A failed registry read leaves the address out: the caller still learns
// the owner's name.
func (o *Orchestrator) notOwner(ctx context.Context, id, owner string) error {
	e := &NotOwnerError{SessionID: id, Owner: owner}
	if owner == "" || owner == o.store.Replica() {
		return e
	}
	addr, ok, err := o.store.ReplicaAddress(ctx, owner)
	switch {
	case err != nil:
		o.logger(ctx).DebugContext(ctx, "replica registry unreadable; owner's address left out", "session_id", id, "owner", owner, "err", err)
	case ok:
		e.Address = addr
	}
	return e
}

// ReadyElsewhere returns the READY sessions that match req (its ticket,
// connector and VIN; the rest is ignored), are not leased and are owned by
// other replicas, as this replica's watch-fed cache sees them now, and a
// channel that is closed at the next change that may make a session
// available (a session READY here, or a READY record written by any
// replica). A forwarding layer leases one of them through its owner, and
// waits on the channel when there is none.
func (o *Orchestrator) ReadyElsewhere(req AcquireRequest) ([]*session.Record, <-chan struct{}) {
	changed := o.readyChan()
	self := o.store.Replica()
	var out []*session.Record
	for _, r := range o.records.live() {
		if r.State == session.StateReady && r.Lease == nil && r.Owner != "" && r.Owner != self && matchAcquire(r, req) {
			out = append(out, r)
		}
	}
	return out, changed
}
