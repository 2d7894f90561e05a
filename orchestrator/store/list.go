package store

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/obdorch/obdorch/orchestrator/session"
)

// Page sizes of List.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// batchSize is how many records List reads from etcd at a time. It stays
// below etcd's default limit of 128 operations per transaction.
const batchSize = 100

// Filter selects records. The zero Filter selects all.
type Filter struct {
	// States selects records in any of these states; empty selects all.
	States []session.State
	// TicketID and ConnectorID, if set, select records of that target.
	TicketID    string
	ConnectorID string
}

// Match reports whether rec passes f.
func (f Filter) Match(rec *session.Record) bool {
	return (len(f.States) == 0 || slices.Contains(f.States, rec.State)) &&
		(f.TicketID == "" || rec.TicketID == f.TicketID) &&
		(f.ConnectorID == "" || rec.ConnectorID == f.ConnectorID)
}

// liveOnly reports whether f selects live records only, which the live
// index lists without reading ended sessions.
func (f Filter) liveOnly() bool {
	return len(f.States) > 0 && !slices.ContainsFunc(f.States, func(s session.State) bool { return !s.Live() })
}

// List returns one page of the records that match f, in session id order,
// and the token of the next page ("" after the last). pageSize defaults to
// DefaultPageSize and is capped at MaxPageSize; pageToken is "" for the
// first page. A filter on live states only reads the live index, not the
// ended sessions. A page is read at one revision; pages may differ.
func (s *Store) List(ctx context.Context, f Filter, pageSize int, pageToken string) ([]*session.Record, string, error) {
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	pageSize = min(pageSize, MaxPageSize)
	after, err := decodeToken(pageToken)
	if err != nil {
		return nil, "", err
	}
	var (
		page []*session.Record
		rev  int64
	)
	for {
		recs, last, more, r, err := s.batch(ctx, f.liveOnly(), after, min(pageSize, batchSize), rev)
		if err != nil {
			return nil, "", err
		}
		after, rev = last, r
		for i, rec := range recs {
			if !f.Match(rec) {
				continue
			}
			page = append(page, rec)
			if len(page) == pageSize {
				if more || i < len(recs)-1 {
					return page, encodeToken(rec.ID), nil
				}
				return page, "", nil
			}
		}
		if !more {
			return page, "", nil
		}
	}
}

// ListLive returns every live record and the revision it read them at.
// Watch(ctx, rev+1, f) continues from there without a gap, which is how a
// replica starts: list, reconcile, then watch.
func (s *Store) ListLive(ctx context.Context) ([]*session.Record, int64, error) {
	var (
		live  []*session.Record
		after string
		rev   int64
	)
	for {
		recs, last, more, r, err := s.batch(ctx, true, after, batchSize, rev)
		if err != nil {
			return nil, 0, err
		}
		after, rev = last, r
		for _, rec := range recs {
			if rec.State.Live() {
				live = append(live, rec)
			}
		}
		if !more {
			return live, rev, nil
		}
	}
}

// batch reads up to n records with ids after the id after, in id order, at
// revision rev (0 for the current one): from the live index if live, else
// from all records. It returns the id of the last key read (the next batch
// starts after it), whether more may follow and the revision read.
func (s *Store) batch(ctx context.Context, live bool, after string, n int, rev int64) (
	recs []*session.Record, last string, more bool, _ int64, _ error) {
	dir := s.sessionKey("")
	if live {
		dir = s.liveKey("")
	}
	start := dir
	if after != "" {
		start = dir + after + "\x00"
	}
	opts := []clientv3.OpOption{
		clientv3.WithRange(clientv3.GetPrefixRangeEnd(dir)),
		clientv3.WithLimit(int64(n)),
		clientv3.WithRev(rev),
	}
	if live {
		opts = append(opts, clientv3.WithKeysOnly())
	}
	resp, err := s.client.Get(ctx, start, opts...)
	if err != nil {
		return nil, "", false, 0, fmt.Errorf("store: list sessions: %w", err)
	}
	rev = resp.Header.Revision
	kvs := resp.Kvs
	if len(kvs) > 0 {
		last = string(kvs[len(kvs)-1].Key[len(dir):])
	}
	if live && len(kvs) > 0 {
		gets := make([]clientv3.Op, len(kvs))
		for i, kv := range kvs {
			gets[i] = clientv3.OpGet(s.sessionKey(string(kv.Key[len(dir):])), clientv3.WithRev(rev))
		}
		txn, err := s.client.Txn(ctx).Then(gets...).Commit()
		if err != nil {
			return nil, "", false, 0, fmt.Errorf("store: list live sessions: %w", err)
		}
		kvs = kvs[:0]
		for _, r := range txn.Responses {
			kvs = append(kvs, r.GetResponseRange().Kvs...)
		}
	}
	recs = make([]*session.Record, 0, len(kvs))
	for _, kv := range kvs {
		rec, err := decodeRecord(kv)
		if err != nil {
			return nil, "", false, 0, err
		}
		recs = append(recs, rec)
	}
	return recs, last, resp.More, rev, nil
}

func encodeToken(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

func decodeToken(token string) (string, error) {
	if token == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) == 0 {
		return "", fmt.Errorf("%w: %q", ErrPageToken, token)
	}
	return string(b), nil
}
