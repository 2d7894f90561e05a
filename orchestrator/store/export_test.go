package store

import clientv3 "go.etcd.io/etcd/client/v3"

// LeaseID exposes the replica's lease to tests, which revoke it to stand for
// an expiry.
func (s *Store) LeaseID() clientv3.LeaseID { return s.lease.Load().id }

// ZapLogger exposes the adapter that etcd's client and server log through.
var ZapLogger = zapLogger

// ClaimValue exposes the encoding of a claim of replica for session id.
func ClaimValue(replica, id string) string {
	return (&Store{replica: replica, claimTail: claimTail(replica)}).claimValue(id)
}

// CatchUpEntries returns how many applied raft entries the server keeps in
// memory for slow followers.
func CatchUpEntries(e *Embedded) uint64 { return e.etcd.Server.Cfg.SnapshotCatchUpEntries }

// MemberCatchUpEntries is CatchUpEntries of cluster member i (running).
func (c *EmbeddedCluster) MemberCatchUpEntries(i int) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CatchUpEntries(c.members[i])
}
