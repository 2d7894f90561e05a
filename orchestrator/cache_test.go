package orchestrator

import (
	"strings"
	"testing"
	"time"

	"github.com/obdorch/obdorch/orchestrator/session"
)

func TestRecordsKeepTheNewest(t *testing.T) {
	c := newRecords()
	rec := func(rev int64, st session.State) *session.Record {
		r := session.New("s1", "a", "", time.Unix(0, 0))
		r.State, r.Revision = st, rev
		return r
	}
	c.put(rec(5, session.StateReady))
	c.put(rec(4, session.StateStarting)) // a late watch event
	if r, _ := c.get("s1"); r.Revision != 5 || r.State != session.StateReady {
		t.Fatalf("get = rev %d %s, want rev 5 READY", r.Revision, r.State)
	}
	mine := rec(6, session.StateRunning)
	c.put(mine)
	mine.State = session.StateFailed // the writer's copy changes later
	if r, _ := c.get("s1"); r.State != session.StateRunning {
		t.Errorf("cached snapshot changed with the writer's record: %s", r.State)
	}
	c.put(rec(7, session.StateFinished))
	if _, ok := c.get("s1"); ok {
		t.Error("an ended record stays cached")
	}
	c.put(rec(6, session.StateRunning)) // late event of the live past
	if _, ok := c.get("s1"); ok {
		t.Error("a late event brought an ended record back")
	}
	c.reset(nil, 10)
	c.put(rec(11, session.StateReady))
	if _, ok := c.get("s1"); !ok {
		t.Error("a newer live record after a reset is not cached")
	}
}

func TestRecordsListPagesLiveSessions(t *testing.T) {
	c := newRecords()
	ready := SessionFilter{States: []session.State{session.StateReady}}
	if _, _, ok, _ := c.list(ready, Page{Size: 2}); ok {
		t.Fatal("list served from a cache that was never filled")
	}
	var recs []*session.Record
	for _, id := range []string{"e", "b", "d", "a", "c"} {
		r := session.New(id, "a", "", time.Unix(0, 0))
		r.State, r.Revision = session.StateReady, 1
		recs = append(recs, r)
	}
	running := session.New("f", "a", "", time.Unix(0, 0))
	running.State, running.Revision = session.StateRunning, 1
	c.reset(append(recs, running), 1)

	var got []string
	token := ""
	for pages := 0; ; pages++ {
		page, next, ok, err := c.list(ready, Page{Size: 2, Token: token})
		if !ok || err != nil {
			t.Fatalf("list = ok %v, %v", ok, err)
		}
		for _, r := range page {
			got = append(got, r.ID)
		}
		if next == "" {
			break
		}
		if pages > 3 {
			t.Fatal("paging does not end")
		}
		token = next
	}
	if want := "a b c d e"; strings.Join(got, " ") != want {
		t.Errorf("READY sessions paged as %v, want %s", got, want)
	}
	if _, _, _, err := c.list(ready, Page{Size: 2, Token: "%%%"}); err == nil {
		t.Error("a malformed page token was accepted")
	}
}
