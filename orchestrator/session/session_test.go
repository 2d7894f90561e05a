package session

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCanTransition(t *testing.T) {
	allowed := map[[2]State]bool{
		{StatePending, StateStarting}:   true,
		{StateStarting, StateReady}:     true,
		{StateReady, StateRunning}:      true,
		{StateRunning, StateReady}:      true,
		{StateReady, StateFinishing}:    true,
		{StateRunning, StateFinishing}:  true,
		{StateFinishing, StateFinished}: true,
	}
	for _, from := range []State{StatePending, StateStarting, StateReady, StateRunning, StateFinishing} {
		allowed[[2]State{from, StateFailed}] = true
		allowed[[2]State{from, StateInterrupted}] = true
	}
	all := []State{StateUnspecified, StatePending, StateStarting, StateReady, StateRunning,
		StateFinishing, StateFinished, StateFailed, StateInterrupted}
	for _, from := range all {
		for _, to := range all {
			want := allowed[[2]State{from, to}]
			if got := CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
}

func TestRecordTransition(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	r := New("s1", "replica-a", "ticket pending", t0)
	r.OpenOBD.Token = "secret"
	r.Lease = &Lease{ID: "l1", Holder: "runner"}
	steps := []struct {
		to      State
		wantErr bool
	}{
		{StateReady, true},
		{StateStarting, false},
		{StateReady, false},
		{StateFinished, true},
		{StateInterrupted, false},
		{StateFailed, true},
	}
	for i, s := range steps {
		before := r.State
		err := r.Transition(s.to, "actor", "why", t0.Add(time.Duration(i+1)*time.Second))
		if gotErr := err != nil; gotErr != s.wantErr {
			t.Fatalf("step %d: Transition(%s -> %s) error = %v, want error %v", i, before, s.to, err, s.wantErr)
		}
		if err != nil {
			if !errors.Is(err, ErrTransition) {
				t.Errorf("step %d: error %v is not ErrTransition", i, err)
			}
			if r.State != before {
				t.Errorf("step %d: refused transition changed state to %s", i, r.State)
			}
		}
	}
	if r.State != StateInterrupted || r.Actor != "actor" || r.Reason != "why" {
		t.Errorf("record = %s by %q (%q), want INTERRUPTED by actor (why)", r.State, r.Actor, r.Reason)
	}
	if r.OpenOBD.Token != "" || r.Lease != nil {
		t.Errorf("final record keeps token %q / lease %v, want both cleared", r.OpenOBD.Token, r.Lease)
	}
	var got []State
	for _, h := range r.History {
		got = append(got, h.To)
	}
	want := []State{StatePending, StateStarting, StateReady, StateInterrupted}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("history states (-want +got):\n%s", diff)
	}
}

func TestRecordJSONRoundTrip(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	r := New("s1", "replica-a", "", t0)
	r.Buses = []Bus{{Name: "can0", CAN: &CANBus{PinPlus: 6, PinMinus: 14, BitRate: 500000}}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, &back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`{"state":"BOGUS"}`), &back); err == nil {
		t.Error(`Unmarshal(state "BOGUS") succeeded, want error`)
	}
}

func TestClone(t *testing.T) {
	r := New("s1", "a", "", time.Unix(0, 0))
	r.Buses = []Bus{{Name: "can0", CAN: &CANBus{BitRate: 500000}}}
	c := r.Clone()
	c.Buses[0].CAN.BitRate = 250000
	c.History[0].Actor = "changed"
	if r.Buses[0].CAN.BitRate != 500000 || r.History[0].Actor != "a" {
		t.Error("Clone shares memory with the original")
	}
}
