package connector_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/obdorch/obdorch/gen/openobd/v1" // registers the openOBD descriptors
)

// These tests pin the openOBD wire contract (openOBD protocol 1.17.2) to the
// facts Jifeline publishes: method paths, streaming kinds, field numbers and
// types, enum numbers. A change here breaks compatibility with Jifeline.

func TestOpenOBDMethods(t *testing.T) {
	const (
		unary = "unary"
		ss    = "server-stream"
		cs    = "client-stream"
		bidi  = "bidi"
	)
	tests := []struct {
		path, kind, in, out string
	}{
		{"/openOBD.v1.sessionController/getSessionControllerToken", unary, "Authenticate", "SessionControllerToken"},
		{"/openOBD.v1.sessionController/startSessionOnTicket", unary, "TicketId", "SessionInfo"},
		{"/openOBD.v1.sessionController/startSessionOnConnector", unary, "ConnectorId", "SessionInfo"},
		{"/openOBD.v1.sessionController/getSession", unary, "SessionId", "SessionInfo"},
		{"/openOBD.v1.sessionController/interruptSession", unary, "SessionId", "SessionInfo"},
		{"/openOBD.v1.sessionController/getSessionList", unary, "EmptyMessage", "SessionInfoList"},
		{"/openOBD.v1.session/authenticate", unary, "EmptyMessage", "SessionToken"},
		{"/openOBD.v1.session/openSessionTokenStream", ss, "EmptyMessage", "SessionToken"},
		{"/openOBD.v1.session/finish", unary, "ServiceResult", "EmptyMessage"},
		{"/openOBD.v1.config/configureBus", cs, "BusConfiguration", "EmptyMessage"},
		{"/openOBD.v1.can/openIsotpStream", bidi, "IsotpMessage", "IsotpMessage"},
		{"/openOBD.v1.can/openRawStream", bidi, "RawFrame", "RawFrame"},
		{"/openOBD.v1.kline/openKlineStream", bidi, "KlineMessage", "KlineMessage"},
		{"/openOBD.v1.connectionMonitor/getConnectorInformation", unary, "EmptyMessage", "ConnectorInformation"},
		{"/openOBD.v1.connectionMonitor/openConnectorInformationStream", ss, "EmptyMessage", "ConnectorInformation"},
		{"/openOBD.v1.userInterface/openControlStream", bidi, "Control", "Control"},
	}
	seen := map[protoreflect.FullName]int{}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			svc, method, ok := strings.Cut(strings.TrimPrefix(tt.path, "/"), "/")
			if !ok {
				t.Fatalf("bad method path %q", tt.path)
			}
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
			if err != nil {
				t.Fatalf("service %s: %v", svc, err)
			}
			sd := d.(protoreflect.ServiceDescriptor)
			seen[sd.FullName()]++
			md := sd.Methods().ByName(protoreflect.Name(method))
			if md == nil {
				t.Fatalf("method %s not found in %s", method, svc)
			}
			kind := unary
			switch {
			case md.IsStreamingClient() && md.IsStreamingServer():
				kind = bidi
			case md.IsStreamingClient():
				kind = cs
			case md.IsStreamingServer():
				kind = ss
			}
			if kind != tt.kind {
				t.Errorf("%s kind = %s, want %s", tt.path, kind, tt.kind)
			}
			if got, want := md.Input().FullName(), protoreflect.FullName("openOBD.v1."+tt.in); got != want {
				t.Errorf("%s input = %s, want %s", tt.path, got, want)
			}
			if got, want := md.Output().FullName(), protoreflect.FullName("openOBD.v1."+tt.out); got != want {
				t.Errorf("%s output = %s, want %s", tt.path, got, want)
			}
		})
	}
	// No method beyond the table: every service's method count matches.
	for name, n := range seen {
		d, _ := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if got := d.(protoreflect.ServiceDescriptor).Methods().Len(); got != n {
			t.Errorf("service %s has %d methods, the wire facts list %d", name, got, n)
		}
	}
}

func TestOpenOBDFields(t *testing.T) {
	type field struct {
		number   protoreflect.FieldNumber
		name     string
		kind     string // scalar kind, or the message/enum short name
		repeated bool
		optional bool // proto3 explicit presence
	}
	tests := map[string][]field{
		"TicketId":               {{1, "value", "string", false, false}},
		"ConnectorId":            {{1, "value", "string", false, false}},
		"SessionId":              {{1, "value", "string", false, false}},
		"SessionControllerToken": {{1, "value", "string", false, false}},
		"SessionToken":           {{1, "value", "string", false, false}},
		"SessionInfo": {
			{1, "id", "string", false, false},
			{2, "state", "string", false, false},
			{3, "created_at", "string", false, false},
			{4, "grpc_endpoint", "string", false, false},
			{5, "authentication_token", "string", false, false},
		},
		"Authenticate": {
			{1, "client_id", "string", false, false},
			{2, "client_secret", "string", false, false},
			{3, "api_key", "string", false, false},
			{4, "cluster_id", "string", false, false},
		},
		"SessionInfoList": {{1, "sessions", "SessionInfo", true, false}},
		"ServiceResult": {
			{1, "result", "Result", true, false},
			{2, "user_feedback", "UserFeedback", false, true},
			{3, "description", "string", false, true},
		},
		"IsotpMessage": {
			{1, "channel", "IsotpChannel", false, false},
			{2, "payload", "string", false, false},
		},
		"IsotpChannel": {
			{1, "bus_name", "string", false, false},
			{2, "request_id", "uint32", false, false},
			{3, "response_id", "uint32", false, false},
			{4, "extended_request_address", "uint32", false, true},
			{5, "extended_response_address", "uint32", false, true},
			{6, "padding", "Padding", false, true},
		},
		"RawFrame": {
			{1, "channel", "RawChannel", false, false},
			{2, "payload", "string", false, true},
		},
		"RawChannel": {
			{1, "bus_name", "string", false, false},
			{3, "request_id", "uint32", false, true},
			{4, "response_id", "uint32", false, true},
		},
		"KlineMessage": {
			{1, "channel", "KlineChannel", false, false},
			{2, "payload", "string", false, false},
		},
		"KlineChannel": {
			{1, "bus_name", "string", false, false},
			{2, "ecu_id", "uint32", false, false},
			{3, "keyword", "Keyword", false, true},
		},
		"Keyword": {
			{1, "key_byte_1", "uint32", false, false},
			{2, "key_byte_2", "uint32", false, false},
		},
		"BusConfiguration": {
			{1, "bus_name", "string", false, false},
			{2, "can_bus", "CanBus", false, false},
			{3, "kline_bus", "KlineBus", false, false},
		},
		"CanBus": {
			{1, "pin_plus", "uint32", false, false},
			{2, "pin_min", "uint32", false, false},
			{3, "can_protocol", "CanProtocol", false, false},
			{4, "can_bit_rate", "CanBitRate", false, false},
			{5, "transceiver", "TransceiverSpeed", false, true},
		},
		"KlineBus": {
			{1, "pin", "uint32", false, false},
			{2, "kline_protocol", "KlineProtocol", false, false},
			{3, "kline_bit_rate", "KlineBitRate", false, false},
		},
		"ConnectorInformation": {
			{1, "connected", "bool", false, false},
			{2, "connected_since", "uint64", false, false},
			{3, "latency", "uint32", false, false},
			{4, "healthy", "bool", false, false},
		},
		"Control": {
			{1, "target", "InterfaceType", false, false},
			{2, "control_label", "Label", false, false},
			{3, "control_options", "Options", false, false},
			{4, "control_continue", "Continue", false, false},
			{5, "control_yesno", "YesNo", false, false},
			{6, "control_freetext", "FreeText", false, false},
			{8, "control_number", "Numbers", false, false},
		},
		"Numbers": {
			{1, "label", "string", false, false},
			{2, "minimum", "uint32", false, false},
			{3, "answer", "uint32", false, true},
			{4, "maximum", "uint32", false, false},
		},
		"EmptyMessage": {},
	}
	for msg, fields := range tests {
		t.Run(msg, func(t *testing.T) {
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName("openOBD.v1." + msg))
			if err != nil {
				t.Fatalf("message %s: %v", msg, err)
			}
			md := d.(protoreflect.MessageDescriptor)
			if got, want := md.Fields().Len(), len(fields); got != want {
				t.Errorf("%s has %d fields, want %d", msg, got, want)
			}
			for _, f := range fields {
				fd := md.Fields().ByNumber(f.number)
				if fd == nil {
					t.Errorf("%s: no field %d (%s)", msg, f.number, f.name)
					continue
				}
				if got := string(fd.Name()); got != f.name {
					t.Errorf("%s field %d name = %s, want %s", msg, f.number, got, f.name)
				}
				kind := fd.Kind().String()
				switch {
				case fd.Message() != nil:
					kind = string(fd.Message().Name())
				case fd.Enum() != nil:
					kind = string(fd.Enum().Name())
				}
				if kind != f.kind {
					t.Errorf("%s.%s type = %s, want %s", msg, f.name, kind, f.kind)
				}
				if got := fd.IsList(); got != f.repeated {
					t.Errorf("%s.%s repeated = %v, want %v", msg, f.name, got, f.repeated)
				}
				if got := fd.HasOptionalKeyword(); got != f.optional {
					t.Errorf("%s.%s optional = %v, want %v", msg, f.name, got, f.optional)
				}
			}
		})
	}
}

func TestOpenOBDEnums(t *testing.T) {
	tests := map[string]map[string]protoreflect.EnumNumber{
		"Result": {
			"RESULT_UNDEFINED": 0, "RESULT_SUCCESS": 1, "RESULT_INVALID_PRECONDITIONS": 2,
			"RESULT_NEEDS_VALIDATION": 3, "RESULT_NEEDS_COMPLETION": 4,
			"RESULT_FAILURE_AUTHENTICATION_ERROR": 5, "RESULT_FAILURE_MISSING_CODING_INFORMATION": 6,
			"RESULT_FAILURE_NOT_COMPATIBLE": 7, "RESULT_FAILURE_COMMUNICATION_ERROR": 8,
			"RESULT_FAILURE_RUNTIME_ERROR": 9, "RESULT_FAILURE_EXTERNAL_SERVICE_ERROR": 10,
			"RESULT_FAILURE": 11,
		},
		"UserFeedback": {
			"USER_FEEDBACK_NOTHING": 0, "USER_FEEDBACK_SUCCESS": 1,
			"USER_FEEDBACK_FAILURE": 3, "USER_FEEDBACK_ASSISTANCE_REQUESTED": 4,
		},
		"Padding": {
			"PADDING_UNDEFINED": 0, "PADDING_ENABLED": 1, "PADDING_DETECTION": 2,
			"PADDING_DISABLED": 3, "PADDING_SET_FROM_ECU": 4, "PADDING_SET_TOWARDS_ECU": 5,
		},
		"CanProtocol": {"CAN_PROTOCOL_UNDEFINED": 0, "CAN_PROTOCOL_ISOTP": 1, "CAN_PROTOCOL_FRAMES": 3},
		"CanBitRate": {
			"CAN_BIT_RATE_UNDEFINED": 0, "CAN_BIT_RATE_1000": 1, "CAN_BIT_RATE_500": 2,
			"CAN_BIT_RATE_250": 3, "CAN_BIT_RATE_125": 4, "CAN_BIT_RATE_100": 5, "CAN_BIT_RATE_94": 6,
			"CAN_BIT_RATE_83_3": 7, "CAN_BIT_RATE_50": 8, "CAN_BIT_RATE_33_3": 9, "CAN_BIT_RATE_20": 10,
			"CAN_BIT_RATE_10": 11, "CAN_BIT_RATE_5": 12,
		},
		"TransceiverSpeed": {"TRANSCEIVER_SPEED_LOW": 0, "TRANSCEIVER_SPEED_HIGH": 1},
		"KlineProtocol": {
			"KLINE_PROTOCOL_UNDEFINED": 0, "KLINE_PROTOCOL_ISO14230_SLOW": 1003, "KLINE_PROTOCOL_ISO14230_FAST": 1004,
		},
		"KlineBitRate": {
			"KLINE_BIT_RATE_UNDEFINED": 0, "KLINE_BIT_RATE_9600": 7, "KLINE_BIT_RATE_10400": 11, "KLINE_BIT_RATE_15625": 18,
		},
		"InterfaceType": {"INTERFACE_UNDEFINED": 0, "INTERFACE_USER": 1, "INTERFACE_OPERATOR": 2},
	}
	for enum, values := range tests {
		t.Run(enum, func(t *testing.T) {
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName("openOBD.v1." + enum))
			if err != nil {
				t.Fatalf("enum %s: %v", enum, err)
			}
			ed := d.(protoreflect.EnumDescriptor)
			if got, want := ed.Values().Len(), len(values); got != want {
				t.Errorf("%s has %d values, want %d", enum, got, want)
			}
			for name, num := range values {
				v := ed.Values().ByName(protoreflect.Name(name))
				if v == nil {
					t.Errorf("%s: no value %s", enum, name)
					continue
				}
				if v.Number() != num {
					t.Errorf("%s.%s = %d, want %d", enum, name, v.Number(), num)
				}
			}
		})
	}
}
