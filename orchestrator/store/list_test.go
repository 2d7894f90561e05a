package store_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
)

// listAll pages through List and returns the ids in page order.
func listAll(t *testing.T, s *store.Store, f store.Filter, pageSize int) []string {
	t.Helper()
	var (
		ids   []string
		token string
	)
	for range 100 {
		page, next, err := s.List(testContext(t), f, pageSize, token)
		if err != nil {
			t.Fatalf("List(%+v, %d, %q) = %v", f, pageSize, token, err)
		}
		if pageSize > 0 && len(page) > pageSize {
			t.Errorf("List(%+v, %d) page of %d records", f, pageSize, len(page))
		}
		for _, rec := range page {
			ids = append(ids, rec.ID)
		}
		if next == "" {
			return ids
		}
		token = next
	}
	t.Fatalf("List(%+v, %d) did not end", f, pageSize)
	return nil
}

func TestList(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a := openStore(t, testConfig(t, "a"))

	// 23 sessions; every third has failed.
	var all, live, failed []string
	for i := range 23 {
		id := fmt.Sprintf("s%02d", i)
		rec := newRecord(id, fmt.Sprintf("t%02d", i), fmt.Sprintf("c%02d", i))
		if err := a.Create(ctx, rec); err != nil {
			t.Fatalf("Create(%s) = %v", id, err)
		}
		all = append(all, id)
		if i%3 == 0 {
			transition(t, rec, session.StateFailed)
			if err := a.Update(ctx, rec); err != nil {
				t.Fatalf("Update(%s) = %v", id, err)
			}
			failed = append(failed, id)
		} else {
			live = append(live, id)
		}
	}
	liveStates := []session.State{session.StatePending, session.StateStarting, session.StateReady,
		session.StateRunning, session.StateFinishing}

	for _, tc := range []struct {
		name     string
		filter   store.Filter
		pageSize int
		want     []string
	}{
		{"all", store.Filter{}, 5, all},
		{"all in one page", store.Filter{}, 0, all},
		{"page of one", store.Filter{}, 1, all},
		{"page size of the total", store.Filter{}, 23, all},
		{"live from the index", store.Filter{States: liveStates}, 4, live},
		{"pending from the index", store.Filter{States: []session.State{session.StatePending}}, 3, live},
		{"failed", store.Filter{States: []session.State{session.StateFailed}}, 3, failed},
		{"live or failed", store.Filter{States: append(liveStates, session.StateFailed)}, 7, all},
		{"ticket", store.Filter{TicketID: "t07"}, 2, []string{"s07"}},
		{"connector", store.Filter{ConnectorID: "c09"}, 2, []string{"s09"}},
		{"ticket and state mismatch", store.Filter{TicketID: "t07", States: []session.State{session.StateFailed}}, 2, nil},
		{"unknown ticket", store.Filter{TicketID: "t99"}, 10, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := listAll(t, a, tc.filter, tc.pageSize)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ids listed (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("bad token", func(t *testing.T) {
		for _, token := range []string{"!!", "===="} {
			if _, _, err := a.List(ctx, store.Filter{}, 5, token); !errors.Is(err, store.ErrPageToken) {
				t.Errorf("List(token %q) = %v, want ErrPageToken", token, err)
			}
		}
	})

	t.Run("ListLive", func(t *testing.T) {
		recs, rev, err := a.ListLive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, rec := range recs {
			ids = append(ids, rec.ID)
		}
		if !slices.Equal(ids, live) {
			t.Errorf("ListLive ids = %v, want %v", ids, live)
		}
		if now, err := a.Revision(ctx); err != nil || rev <= 0 || rev > now {
			t.Errorf("ListLive revision = %d, current %d (%v); want 0 < rev <= current", rev, now, err)
		}
	})
}
