package fake

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

// FuzzIsotp drives the ISO-TP path of a live session (channel validation, hex
// decoding, ECU faults, vehicle) with a sequence of space-separated payloads
// and checks that every answer is well-formed UDS in upper-case hex.
func FuzzIsotp(f *testing.F) {
	f.Add("bus", uint32(0x7E0), uint32(0x7E8), uint8(0), "22F190 1003 2E0101CAFEBABE 220101 3E80 3E00")
	f.Add("bus", uint32(0x7E0), uint32(0x7E8), uint8(0), "3101FF00 3103FF00 190208 1901FF 1101 AA")
	f.Add("bus", uint32(0x7E1), uint32(0x7E9), uint8(3), "22f190 221234 2212341234 10 1083")
	f.Add("bus", uint32(0x7E2), uint32(0x7EA), uint8(12), "22F1 2EF19041 1999 3E 7F 00")
	f.Add("other", uint32(0x7E0), uint32(0x7E8), uint8(0), "3E00")
	f.Add("bus", uint32(0xFFFFFFFF), uint32(0x7E8), uint8(0), "3E00")
	f.Add("bus", uint32(0x7E0), uint32(0x7E8), uint8(0), "2 zz "+strings.Repeat("00", MaxPayload+1))
	f.Fuzz(func(t *testing.T, busName string, reqID, respID uint32, faults uint8, payloads string) {
		s, sess := fuzzSession(t)
		fault := ECUFault{Silent: faults&1 != 0 && faults&2 == 0, BusyRepeat: int(faults>>2) & 3, Pending: int(faults>>4) & 3}
		if err := s.faults.SetECUFault("", reqID, fault); err != nil {
			t.Fatalf("SetECUFault: %v", err)
		}
		ch := &openobdv1.IsotpChannel{BusName: busName, RequestId: reqID, ResponseId: respID}
		for p := range strings.FieldsSeq(payloads) {
			req, _ := hex.DecodeString(p)
			var sent []*openobdv1.IsotpMessage
			err := s.isotp(t.Context(), sess, &openobdv1.IsotpMessage{Channel: ch, Payload: p}, func(m *openobdv1.IsotpMessage) error {
				sent = append(sent, m)
				return nil
			})
			if err != nil {
				if len(sent) > 0 {
					t.Fatalf("isotp(%s) failed with %v after answering", p, err)
				}
				return // the stream would end here
			}
			for _, m := range sent {
				checkAnswer(t, req, m.GetPayload())
			}
		}
	})
}

func checkAnswer(t *testing.T, req []byte, payload string) {
	t.Helper()
	if payload != strings.ToUpper(payload) {
		t.Fatalf("answer %s is not upper case", payload)
	}
	b, err := hex.DecodeString(payload)
	if err != nil || len(b) == 0 || len(b) > MaxPayload {
		t.Fatalf("answer %.40s: %d bytes, %v", payload, len(b), err)
	}
	switch {
	case b[0] == sidNegativeResponse:
		if len(b) != 3 || b[1] != req[0] {
			t.Fatalf("negative answer %s to %X is not 7F <sid> <nrc>", payload, req)
		}
	case b[0] != req[0]+0x40:
		t.Fatalf("answer %.40s to %X has the wrong service id", payload, req)
	}
}

// fuzzSession returns a fake with one active session that has "bus"
// configured for ISO-TP.
func fuzzSession(t *testing.T) (*Server, *session) {
	target := Target{TicketID: "t", TicketNumber: "1", ConnectorID: "c", ConnectorName: "n", VIN: DefaultVIN}
	s, err := New(Options{
		ClientID: "id", ClientSecret: "secret",
		Directory:             NewStaticDirectory(target),
		RoutinePendingSpacing: time.Nanosecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	info, err := s.start(t.Context(), target)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[info.GetId()]
	sess.state = StateActive
	sess.buses.Store(&busMap{"bus": {BusName: "bus", BusDefinition: &openobdv1.BusConfiguration_CanBus{CanBus: &openobdv1.CanBus{
		PinPlus: 6, PinMin: 14, CanProtocol: openobdv1.CanProtocol_CAN_PROTOCOL_ISOTP, CanBitRate: openobdv1.CanBitRate_CAN_BIT_RATE_500,
	}}}})
	return s, sess
}

func TestTransferTime(t *testing.T) {
	tests := []struct {
		bytes, rate int
		want        time.Duration
	}{
		{3, 500_000, 250 * time.Microsecond},       // single frame
		{7, 500_000, 250 * time.Microsecond},       // still a single frame
		{8, 500_000, 750 * time.Microsecond},       // first frame, flow control, one consecutive frame
		{20, 500_000, 1000 * time.Microsecond},     // FF(6) + FC + 2 CF(14)
		{4095, 500_000, 146750 * time.Microsecond}, // FF + FC + 585 CF = 587 frames
		{3, 250_000, 500 * time.Microsecond},
		{3, 0, 0},
		{0, 500_000, 0},
	}
	for _, tc := range tests {
		if got := transferTime(tc.bytes, tc.rate); got != tc.want {
			t.Errorf("transferTime(%d, %d) = %v, want %v", tc.bytes, tc.rate, got, tc.want)
		}
	}
}
