package controlplane

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
)

func TestBusesFromProtoNamesTheField(t *testing.T) {
	can := func(name string, plus, minus, rate uint32) *orchestratorv1.Bus {
		return &orchestratorv1.Bus{Name: name, Definition: &orchestratorv1.Bus_Can{Can: &orchestratorv1.CanBus{PinPlus: plus, PinMinus: minus, BitRate: rate}}}
	}
	tests := []struct {
		name  string
		buses []*orchestratorv1.Bus
		field string // "" for valid
	}{
		{"valid", []*orchestratorv1.Bus{can("can0", 6, 14, 500000)}, ""},
		{"none", nil, "buses"},
		{"five", []*orchestratorv1.Bus{can("a", 1, 2, 500000), can("b", 3, 4, 500000), can("c", 5, 6, 500000), can("d", 7, 8, 500000), can("e", 9, 10, 500000)}, "buses"},
		{"no name", []*orchestratorv1.Bus{can("", 6, 14, 500000)}, "buses[0].name"},
		{"duplicate name", []*orchestratorv1.Bus{can("x", 6, 14, 500000), can("x", 3, 11, 500000)}, "buses[1].name"},
		{"shared pin", []*orchestratorv1.Bus{can("a", 6, 14, 500000), can("b", 6, 11, 500000)}, "buses[1].can.pin_plus"},
		{"pin out of range", []*orchestratorv1.Bus{can("a", 0, 14, 500000)}, "buses[0].can.pin_plus"},
		{"bad bit rate", []*orchestratorv1.Bus{can("a", 6, 14, 123)}, "buses[0].can.bit_rate"},
		{"no definition", []*orchestratorv1.Bus{{Name: "a"}}, "buses[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := busesFromProto(tt.buses)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("busesFromProto = %v, want no error", err)
				}
				return
			}
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("busesFromProto = %v, want INVALID_ARGUMENT", err)
			}
			if msg := status.Convert(err).Message(); !strings.Contains(msg, "invalid "+tt.field+":") {
				t.Errorf("busesFromProto = %q, want it to name %s", msg, tt.field)
			}
		})
	}
}

// FuzzRequestValidation feeds arbitrary wire bytes as control-plane requests
// to the validators: they must answer INVALID_ARGUMENT or accept, never
// panic.
func FuzzRequestValidation(f *testing.F) {
	seed := func(m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(&orchestratorv1.ConfigureBusRequest{SessionId: "s", Buses: []*orchestratorv1.Bus{{Name: "can0", Definition: &orchestratorv1.Bus_Can{Can: &orchestratorv1.CanBus{PinPlus: 6, PinMinus: 14, BitRate: 500000}}}}})
	seed(&orchestratorv1.SendRequest{SessionId: "s", Channel: &orchestratorv1.Channel{BusName: "can0", RequestId: 0x7E0, ResponseId: 0x7E8}, Payload: []byte{0x22, 0xF1, 0x90}})
	seed(&orchestratorv1.FinishSessionRequest{Result: &orchestratorv1.FinishResult{Codes: []orchestratorv1.ResultCode{1}}})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(err error) {
			if err != nil && status.Code(err) != codes.InvalidArgument {
				t.Fatalf("validation error %v is not INVALID_ARGUMENT", err)
			}
		}
		var cb orchestratorv1.ConfigureBusRequest
		if proto.Unmarshal(b, &cb) == nil {
			_, err := busesFromProto(cb.GetBuses())
			check(err)
		}
		var sr orchestratorv1.SendRequest
		if proto.Unmarshal(b, &sr) == nil {
			_, err := channelFromProto("channel", sr.GetChannel())
			check(err)
			_, err = requestFromProto("", sr.GetPayload(), sr.GetTimeout(), sr.Timeout != nil, sr.GetIdempotent())
			check(err)
		}
		var fr orchestratorv1.FinishSessionRequest
		if proto.Unmarshal(b, &fr) == nil {
			check(validateResult(fr.GetResult()))
		}
		var lr orchestratorv1.ListSessionsRequest
		if proto.Unmarshal(b, &lr) == nil {
			_, err := validatePage(lr.GetPageSize(), lr.GetPageToken())
			check(err)
			_, err = filterFromProto(lr.GetStates(), "", lr.GetTicketId(), lr.GetConnectorId())
			check(err)
		}
	})
}
