package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

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
// false when it is not registered (not running, or its lease ended). The
// read may lag the newest registration by the member's replication delay.
func (s *Store) ReplicaAddress(ctx context.Context, name string) (address string, ok bool, err error) {
	if name == "" {
		return "", false, errors.New("store: replica address: empty replica name")
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
