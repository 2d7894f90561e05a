package store

import (
	"context"
	"errors"
	"iter"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// WatchReleases yields the id of each session whose ticket or connector
// claim is deleted from now on: its owner's store lease ended (a crash, a
// pause past the lease) or the session ended. A replica adopts orphans as
// soon as their claims go, instead of at its next pass over the live
// sessions. The sequence ends after yielding an error when ctx ends or the
// watch fails for good; a session may be yielded more than once.
func (s *Store) WatchReleases(ctx context.Context) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		dir := s.prefix + "claims/"
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		defer cancel()
		for resp := range s.client.Watch(wctx, dir, clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithFilterPut()) {
			if err := resp.Err(); err != nil {
				yield("", err)
				return
			}
			for _, ev := range resp.Events {
				if ev.Type != mvccpb.DELETE || ev.PrevKv == nil {
					continue
				}
				c, err := decodeClaim(ev.PrevKv)
				if err != nil || c.SessionID == "" {
					continue
				}
				if !yield(c.SessionID, nil) {
					return
				}
			}
		}
		if err := context.Cause(wctx); err != nil {
			yield("", err)
			return
		}
		yield("", errReleasesEnded)
	}
}

var errReleasesEnded = errors.New("store: claim watch ended")
