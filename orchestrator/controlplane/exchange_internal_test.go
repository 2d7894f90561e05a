package controlplane

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestSetDurationMatchesDurationpb(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 999, time.Microsecond, 1500 * time.Millisecond, 3*time.Second + 7, -1, -1500 * time.Millisecond, time.Hour} {
		var got durationpb.Duration
		setDuration(&got, d)
		if want := durationpb.New(d); !proto.Equal(&got, want) {
			t.Errorf("setDuration(%v) = %v, want %v", d, &got, want)
		}
	}
}

func TestExchangeResponseIsOneValidMessage(t *testing.T) {
	m := newExchangeResponse(42)
	m.setTotal(3 * time.Millisecond)
	m.setECU(2 * time.Millisecond)
	b, err := proto.Marshal(&m.msg)
	if err != nil {
		t.Fatalf("Marshal = %v", err)
	}
	var back = m.msg.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(b, back); err != nil {
		t.Fatalf("Unmarshal = %v", err)
	}
	if !proto.Equal(back, &m.msg) {
		t.Errorf("round trip = %v, want %v", back, &m.msg)
	}
	r := m.msg.GetResponse()
	if r.GetCorrelationId() != 42 || r.GetTotalTime().AsDuration() != 3*time.Millisecond || r.GetEcuTime().AsDuration() != 2*time.Millisecond {
		t.Errorf("response = %v, want correlation 42, total 3ms, ecu 2ms", r)
	}
}

func TestStallWatchCallsForAStuckSend(t *testing.T) {
	stalled := make(chan struct{}, 2)
	w := newStallWatch(10*time.Millisecond, func() { stalled <- struct{}{} })
	defer w.stop()
	w.sending() // never sent
	select {
	case <-stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("onStall not called for a send that never finished")
	}
}
