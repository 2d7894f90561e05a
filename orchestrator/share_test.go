package orchestrator

import (
	"testing"
	"time"

	"github.com/obdorch/obdorch/orchestrator/session"
)

func TestFairShare(t *testing.T) {
	tests := []struct {
		name             string
		work, replicas   int
		want             int
		maxPercentOfWork int // 0: not checked
	}{
		{"no work", 0, 3, 1, 0},
		{"lone replica takes everything", 30, 1, 33, 0},
		{"lone replica, one ticket", 1, 1, 2, 0},
		{"three replicas, 30 tickets", 30, 3, 11, 60},
		{"two survivors of three, 30 sessions", 30, 2, 16, 60},
		{"three replicas, 60 tickets", 60, 3, 22, 60},
		{"uneven split rounds up", 31, 3, 12, 60},
		{"more replicas than work", 2, 5, 2, 0},
		{"no registry yet counts as one", 7, 0, 8, 0},
		{"negative work is none", -4, 2, 1, 0},
		{"large cluster", 1000, 4, 275, 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fairShare(tt.work, tt.replicas)
			if got != tt.want {
				t.Errorf("fairShare(%d, %d) = %d, want %d", tt.work, tt.replicas, got, tt.want)
			}
			if tt.maxPercentOfWork > 0 && got*100 > tt.work*tt.maxPercentOfWork {
				t.Errorf("fairShare(%d, %d) = %d is over %d%% of the work", tt.work, tt.replicas, got, tt.maxPercentOfWork)
			}
			if r := max(tt.replicas, 1); got*r < tt.work {
				t.Errorf("fairShare(%d, %d) = %d: %d replicas at their share leave work over", tt.work, tt.replicas, got, r)
			}
		})
	}
}

func TestShareViewMayTake(t *testing.T) {
	tests := []struct {
		name string
		v    shareView
		want bool
	}{
		{"under the share", shareView{held: 3, work: 30, replicas: 3, max: 100}, true},
		{"at the share", shareView{held: 11, work: 30, replicas: 3, max: 100}, false},
		{"at the share, the others full", shareView{held: 11, work: 30, replicas: 3, max: 100, othersFull: true}, true},
		{"at the share, waited past the grace", shareView{held: 11, work: 30, replicas: 3, max: 100, waited: true}, true},
		{"at max sessions", shareView{held: 5, work: 30, replicas: 3, max: 5}, false},
		{"at max sessions, the others full and waited", shareView{held: 5, work: 30, replicas: 3, max: 5, othersFull: true, waited: true}, false},
		{"a joiner with nothing", shareView{held: 0, work: 30, replicas: 4, max: 100}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.mayTake(); got != tt.want {
				t.Errorf("%+v.mayTake() = %v, want %v", tt.v, got, tt.want)
			}
		})
	}
}

func TestOthersFull(t *testing.T) {
	recs := func(owners ...string) []*session.Record {
		var out []*session.Record
		for _, o := range owners {
			out = append(out, &session.Record{Owner: o})
		}
		return out
	}
	reg := map[string]bool{"a": true, "b": true, "c": true}
	tests := []struct {
		name     string
		live     []*session.Record
		replicas map[string]bool
		share    int
		want     bool
	}{
		{"both others at the share", recs("b", "b", "c", "c", "a"), reg, 2, true},
		{"one other under", recs("b", "b", "c", "a"), reg, 2, false},
		{"an orphan's owner is not registered", recs("b", "b", "c", "c", "x", "x", "x"), reg, 2, true},
		{"alone", recs("a"), map[string]bool{"a": true}, 1, false},
		{"no registry", recs("a", "b"), map[string]bool{}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := othersFull(tt.live, tt.replicas, "a", tt.share); got != tt.want {
				t.Errorf("othersFull(...) = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSpreadIntakeSeenForgetsWhatStoppedWaiting(t *testing.T) {
	s := newSpread()
	s.setReplicas([]string{"a", "b"}, "a")
	t0 := time.Unix(1000, 0)
	s.intakeSeen(nil, map[string]bool{"t1": true, "t2": true}, t0)
	s.waiting[sessionKey("orphan")] = t0
	s.waiting[sessionKey("adopted")] = t0
	live := []*session.Record{
		{ID: "orphan", Owner: "gone", TicketID: "t9"},
		{ID: "adopted", Owner: "b", TicketID: "t8"},
		{ID: "s1", Owner: "a", TicketID: "t1"},
	}
	s.intakeSeen(live, map[string]bool{"t2": true, "t3": true}, t0.Add(time.Second))
	want := map[key]time.Time{
		ticketKey("t2"):      t0,
		ticketKey("t3"):      t0.Add(time.Second),
		sessionKey("orphan"): t0,
	}
	if len(s.waiting) != len(want) {
		t.Fatalf("waiting = %v, want %v", s.waiting, want)
	}
	for k, since := range want {
		if got, ok := s.waiting[k]; !ok || !got.Equal(since) {
			t.Errorf("waiting[%v] = %v, %v; want %v", k, got, ok, since)
		}
	}
	if s.work != 5 {
		t.Errorf("work = %d, want 5 (3 live sessions, 2 unclaimed tickets)", s.work)
	}
}

func TestSpreadSetReplicasReportsChangesOfTheShare(t *testing.T) {
	s := newSpread()
	steps := []struct {
		names []string
		want  bool
	}{
		{nil, false},                // alone, as before the first listing
		{[]string{"a"}, false},      // its own registration: still alone
		{[]string{"a", "b"}, true},  // a second replica
		{[]string{"b", "a"}, false}, // the same two
		{[]string{"a", "c"}, true},  // b left, c came: same count, other names
		{[]string{"c"}, false},      // a itself unregistered (lease lost): still a and c
		{[]string{}, true},          // c left
	}
	for i, st := range steps {
		if got := s.setReplicas(st.names, "a"); got != st.want {
			t.Errorf("step %d: setReplicas(%v, a) = %v, want %v", i, st.names, got, st.want)
		}
	}
}
