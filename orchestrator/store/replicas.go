package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Replica is the value of a registry key: where a running replica answers
// control-plane calls.
type Replica struct {
	// Name is the replica's name (Config.Replica).
	Name string `json:"name"`
	// Address is the replica's advertised control-plane address
	// (host:port), reachable by the other replicas.
	Address string `json:"address"`
}

func (s *Store) replicaKey(name string) string { return s.prefix + "replicas/" + name }

// Register records this replica's advertised control-plane address in the
// registry, bound to the replica's lease: the entry disappears when the
// replica stops renewing its lease or closes the Store. Registering again
// replaces the address; Regrant registers the address again under the new
// lease.
func (s *Store) Register(ctx context.Context, address string) error {
	if address == "" || strings.ContainsAny(address, " /") {
		return fmt.Errorf("store: register replica %s: address %q is not host:port", s.replica, address)
	}
	lease, err := s.currentLease()
	if err != nil {
		return err
	}
	s.address.Store(&address)
	b, err := json.Marshal(Replica{Name: s.replica, Address: address})
	if err != nil {
		return fmt.Errorf("store: register replica %s: %w", s.replica, err)
	}
	if _, err := s.client.Put(ctx, s.replicaKey(s.replica), string(b), clientv3.WithLease(lease)); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return fmt.Errorf("%w: register replica %s: lease not found", ErrFenced, s.replica)
		}
		return fmt.Errorf("store: register replica %s: %w", s.replica, err)
	}
	return nil
}

// ReplicaAddress returns the advertised address of the named replica; ok is
// false when it is not registered (not running, or its lease ended). While a
// WatchReplicas runs, a replica it shows is answered from the watch, with no
// store read (a forwarded call asks for every call); otherwise, and for a
// replica the watch does not show (yet), the read may lag the newest
// registration by the member's replication delay.
func (s *Store) ReplicaAddress(ctx context.Context, name string) (address string, ok bool, err error) {
	if name == "" {
		return "", false, errors.New("store: replica address: empty replica name")
	}
	if m := s.registry.Load(); m != nil {
		if a := (*m)[name]; a != "" {
			return a, true, nil
		}
	}
	resp, err := s.client.Get(ctx, s.replicaKey(name), clientv3.WithSerializable())
	if err != nil {
		return "", false, fmt.Errorf("store: read replica %s: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return "", false, nil
	}
	var r Replica
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return "", false, fmt.Errorf("store: decode %s: %w", resp.Kvs[0].Key, err)
	}
	return r.Address, true, nil
}

// WatchReplicas yields the names of the registered replicas, sorted: first
// as they are now, then again after every change to the registry (a replica
// registering, stopping or losing its lease). The sequence ends after
// yielding an error when ctx ends or the watch fails (etcd without a
// leader, a compacted revision); the caller starts it again to relist.
// While it runs, ReplicaAddress answers from it.
func (s *Store) WatchReplicas(ctx context.Context) iter.Seq2[[]string, error] {
	return func(yield func([]string, error) bool) {
		defer s.registry.Store(nil)
		dir := s.replicaKey("")
		resp, err := s.client.Get(ctx, dir, clientv3.WithPrefix())
		if err != nil {
			yield(nil, fmt.Errorf("store: list replicas: %w", err))
			return
		}
		names := map[string]bool{}
		addrs := map[string]string{}
		for _, kv := range resp.Kvs {
			name := string(kv.Key[len(dir):])
			names[name], addrs[name] = true, registeredAddress(kv.Value)
		}
		s.publishRegistry(addrs)
		if !yield(sortedNames(names), nil) {
			return
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		defer cancel()
		for wr := range s.client.Watch(wctx, dir, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
			if err := wr.Err(); err != nil {
				yield(nil, fmt.Errorf("store: watch replicas: %w", err))
				return
			}
			changed := false
			for _, ev := range wr.Events {
				name := string(ev.Kv.Key[len(dir):])
				switch {
				case ev.Type == mvccpb.DELETE:
					changed = changed || names[name]
					delete(names, name)
					delete(addrs, name)
				case ev.Type == mvccpb.PUT:
					changed = changed || !names[name]
					names[name], addrs[name] = true, registeredAddress(ev.Kv.Value)
				}
			}
			s.publishRegistry(addrs)
			if changed && !yield(sortedNames(names), nil) {
				return
			}
		}
		if err := context.Cause(wctx); err != nil {
			yield(nil, err)
			return
		}
		yield(nil, errors.New("store: replica watch ended"))
	}
}

// registeredAddress is the address in a registry value; "" when the value
// cannot be read (ReplicaAddress then reads the store and reports why).
func registeredAddress(v []byte) string {
	var r Replica
	if json.Unmarshal(v, &r) != nil {
		return ""
	}
	return r.Address
}

// publishRegistry makes a copy of addrs what ReplicaAddress answers from.
func (s *Store) publishRegistry(addrs map[string]string) {
	m := maps.Clone(addrs)
	s.registry.Store(&m)
}

func sortedNames(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
