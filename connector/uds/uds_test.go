package uds_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/obdorch/obdorch/connector/uds"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		name              string
		request, response []byte
		want              uds.Verdict
	}{
		{"positive read", []byte{0x22, 0xF1, 0x90}, []byte{0x62, 0xF1, 0x90, 'W', 'V', 'W'}, uds.Verdict{Outcome: uds.Positive}},
		{"positive single byte", []byte{0x3E, 0x00}, []byte{0x7E}, uds.Verdict{Outcome: uds.Positive}},
		{"positive high SID", []byte{0x85, 0x02}, []byte{0xC5, 0x02}, uds.Verdict{Outcome: uds.Positive}},
		{"negative", []byte{0x22, 0xF1, 0x90}, []byte{0x7F, 0x22, 0x31}, uds.Verdict{Outcome: uds.Negative, NRC: uds.RequestOutOfRange}},
		{"response pending", []byte{0x31, 0x01, 0xFF, 0x00}, []byte{0x7F, 0x31, 0x78}, uds.Verdict{Outcome: uds.Negative, NRC: uds.ResponsePending}},
		{"busy", []byte{0x10, 0x03}, []byte{0x7F, 0x10, 0x21}, uds.Verdict{Outcome: uds.Negative, NRC: uds.BusyRepeatRequest}},
		{"negative for another service", []byte{0x22, 0xF1, 0x90}, []byte{0x7F, 0x10, 0x31}, uds.Verdict{}},
		{"negative too long", []byte{0x22, 0xF1, 0x90}, []byte{0x7F, 0x22, 0x31, 0x00}, uds.Verdict{}},
		{"negative too short", []byte{0x22, 0xF1, 0x90}, []byte{0x7F, 0x22}, uds.Verdict{}},
		{"other service", []byte{0x22, 0xF1, 0x90}, []byte{0x50, 0x03}, uds.Verdict{}},
		{"echo of request", []byte{0x22, 0xF1, 0x90}, []byte{0x22, 0xF1, 0x90}, uds.Verdict{}},
		{"empty response", []byte{0x22, 0xF1, 0x90}, nil, uds.Verdict{}},
		{"empty request", nil, []byte{0x62}, uds.Verdict{}},
		{"request is a response SID", []byte{0x62, 0xF1}, []byte{0xA2}, uds.Verdict{}},
		{"request is 7F", []byte{0x7F, 0x22, 0x31}, []byte{0x7F, 0x7F, 0x11}, uds.Verdict{}},
		{"read of another DID", []byte{0x22, 0xF1, 0x8C}, []byte{0x62, 0xF1, 0x90, 'W'}, uds.Verdict{}},
		{"read answer too short for its DID", []byte{0x22, 0xF1, 0x90}, []byte{0x62, 0xF1}, uds.Verdict{}},
		{"write of another DID", []byte{0x2E, 0xF1, 0x98, 0x01}, []byte{0x6E, 0xF1, 0x90}, uds.Verdict{}},
		{"write echoed", []byte{0x2E, 0xF1, 0x98, 0x01}, []byte{0x6E, 0xF1, 0x98}, uds.Verdict{Outcome: uds.Positive}},
		{"routine echoed", []byte{0x31, 0x01, 0xFF, 0x00}, []byte{0x71, 0x01, 0xFF, 0x00, 0x00}, uds.Verdict{Outcome: uds.Positive}},
		{"other routine", []byte{0x31, 0x01, 0xFF, 0x00}, []byte{0x71, 0x01, 0xFF, 0x01}, uds.Verdict{}},
		{"routine results vs start", []byte{0x31, 0x03, 0xFF, 0x00}, []byte{0x71, 0x01, 0xFF, 0x00}, uds.Verdict{}},
		{"other session", []byte{0x10, 0x03}, []byte{0x50, 0x01, 0x00, 0x32, 0x01, 0xF4}, uds.Verdict{}},
		{"session echoed", []byte{0x10, 0x03}, []byte{0x50, 0x03, 0x00, 0x32, 0x01, 0xF4}, uds.Verdict{Outcome: uds.Positive}},
		{"suppress bit ignored", []byte{0x3E, 0x80}, []byte{0x7E, 0x00}, uds.Verdict{Outcome: uds.Positive}},
		{"short request matches on SID", []byte{0x22}, []byte{0x62, 0xF1, 0x90}, uds.Verdict{Outcome: uds.Positive}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := uds.Match(tt.request, tt.response); got != tt.want {
				t.Errorf("Match(% X, % X) = %+v, want %+v", tt.request, tt.response, got, tt.want)
			}
		})
	}
}

func TestMatchAllocatesNothing(t *testing.T) {
	req, resp := []byte{0x22, 0xF1, 0x90}, []byte{0x7F, 0x22, 0x78}
	if n := testing.AllocsPerRun(100, func() { uds.Match(req, resp) }); n != 0 {
		t.Errorf("Match allocates %v times per call, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = uds.ResponsePending.String() }); n != 0 {
		t.Errorf("NRC.String allocates %v times per call, want 0", n)
	}
}

func TestNRCString(t *testing.T) {
	tests := []struct {
		nrc  uds.NRC
		want string
	}{
		{0x10, "generalReject"},
		{0x11, "serviceNotSupported"},
		{0x12, "subFunctionNotSupported"},
		{0x13, "incorrectMessageLengthOrInvalidFormat"},
		{0x14, "responseTooLong"},
		{0x21, "busyRepeatRequest"},
		{0x22, "conditionsNotCorrect"},
		{0x24, "requestSequenceError"},
		{0x25, "noResponseFromSubnetComponent"},
		{0x26, "failurePreventsExecutionOfRequestedAction"},
		{0x31, "requestOutOfRange"},
		{0x33, "securityAccessDenied"},
		{0x35, "invalidKey"},
		{0x36, "exceedNumberOfAttempts"},
		{0x37, "requiredTimeDelayNotExpired"},
		{0x70, "uploadDownloadNotAccepted"},
		{0x71, "transferDataSuspended"},
		{0x72, "generalProgrammingFailure"},
		{0x73, "wrongBlockSequenceCounter"},
		{0x78, "requestCorrectlyReceivedResponsePending"},
		{0x7E, "subFunctionNotSupportedInActiveSession"},
		{0x7F, "serviceNotSupportedInActiveSession"},
		{0x00, "NRC 0x00"},
		{0x93, "NRC 0x93"},
	}
	for _, tt := range tests {
		if got := tt.nrc.String(); got != tt.want {
			t.Errorf("NRC(0x%02X).String() = %q, want %q", byte(tt.nrc), got, tt.want)
		}
	}
}

func TestSIDString(t *testing.T) {
	tests := []struct {
		sid  uds.SID
		want string
	}{
		{0x10, "DiagnosticSessionControl"},
		{0x22, "ReadDataByIdentifier"},
		{0x31, "RoutineControl"},
		{0x3E, "TesterPresent"},
		{0x85, "ControlDTCSetting"},
		{0xBA, "SID 0xBA"},
	}
	for _, tt := range tests {
		if got := tt.sid.String(); got != tt.want {
			t.Errorf("SID(0x%02X).String() = %q, want %q", byte(tt.sid), got, tt.want)
		}
	}
}

func TestIsIdempotent(t *testing.T) {
	tests := []struct {
		sid  uds.SID
		want bool
	}{
		{uds.ReadDataByIdentifier, true},
		{uds.ReadDTCInformation, true},
		{uds.TesterPresent, true},
		{uds.ReadMemoryByAddress, true},
		{uds.ReadECUIdentification, true},
		{uds.DiagnosticSessionControl, false},
		{uds.ECUReset, false},
		{uds.WriteDataByIdentifier, false},
		{uds.RoutineControl, false},
		{uds.SecurityAccess, false},
		{uds.ClearDiagnosticInformation, false},
	}
	for _, tt := range tests {
		if got := uds.IsIdempotent(tt.sid); got != tt.want {
			t.Errorf("IsIdempotent(%v) = %v, want %v", tt.sid, got, tt.want)
		}
	}
}

func TestNegativeResponseError(t *testing.T) {
	var err error = &uds.NegativeResponseError{SID: uds.ReadDataByIdentifier, NRC: uds.RequestOutOfRange}
	if got, want := err.Error(), "uds: ReadDataByIdentifier (0x22): requestOutOfRange (0x31)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("reading VIN: %w", err)
	tests := []struct {
		target *uds.NegativeResponseError
		want   bool
	}{
		{&uds.NegativeResponseError{NRC: uds.RequestOutOfRange}, true},
		{&uds.NegativeResponseError{SID: uds.ReadDataByIdentifier, NRC: uds.RequestOutOfRange}, true},
		{&uds.NegativeResponseError{SID: uds.RoutineControl, NRC: uds.RequestOutOfRange}, false},
		{&uds.NegativeResponseError{NRC: uds.ConditionsNotCorrect}, false},
	}
	for _, tt := range tests {
		if got := errors.Is(wrapped, tt.target); got != tt.want {
			t.Errorf("errors.Is(err, %+v) = %v, want %v", *tt.target, got, tt.want)
		}
	}
	var nre *uds.NegativeResponseError
	if !errors.As(wrapped, &nre) || nre.NRC != uds.RequestOutOfRange {
		t.Errorf("errors.As(err) = %v, want NRC 0x31", nre)
	}
}

// FuzzMatch checks Match's invariants on arbitrary byte strings: it never
// panics, a positive verdict means the SID + 0x40 rule holds, and a negative
// one is exactly 7F <SID> <NRC>.
func FuzzMatch(f *testing.F) {
	f.Add([]byte{0x22, 0xF1, 0x90}, []byte{0x62, 0xF1, 0x90, 0x31})
	f.Add([]byte{0x31, 0x01, 0xFF, 0x00}, []byte{0x7F, 0x31, 0x78})
	f.Add([]byte{0x10, 0x03}, []byte{0x7F, 0x10, 0x21, 0x00})
	f.Add([]byte{0x7F}, []byte{0x7F, 0x7F, 0x7F})
	f.Add([]byte{}, []byte{0x62})
	f.Fuzz(func(t *testing.T, request, response []byte) {
		v := uds.Match(request, response)
		switch v.Outcome {
		case uds.Positive:
			if response[0] != request[0]+uds.PositiveResponseOffset || request[0]&uds.PositiveResponseOffset != 0 {
				t.Fatalf("Match(% X, % X) = positive, but the SID rule does not hold", request, response)
			}
		case uds.Negative:
			if len(response) != 3 || response[0] != 0x7F || response[1] != request[0] || uds.NRC(response[2]) != v.NRC {
				t.Fatalf("Match(% X, % X) = negative %v, but the response is not 7F SID NRC", request, response, v.NRC)
			}
		case uds.Stray:
			if v.NRC != 0 {
				t.Fatalf("Match(% X, % X) = stray with NRC %v", request, response, v.NRC)
			}
		default:
			t.Fatalf("Match(% X, % X) = unknown outcome %d", request, response, v.Outcome)
		}
	})
}

func ExampleMatch() {
	request := []byte{0x22, 0xF1, 0x90} // read the VIN
	for _, response := range [][]byte{
		{0x7F, 0x22, 0x78},             // response pending
		{0x50, 0x03},                   // a late answer to another request
		{0x62, 0xF1, 0x90, 0x57, 0x30}, // the answer
	} {
		v := uds.Match(request, response)
		switch v.Outcome {
		case uds.Negative:
			fmt.Println("negative:", v.NRC)
		default:
			fmt.Println(v.Outcome)
		}
	}
	// Output:
	// negative: requestCorrectlyReceivedResponsePending
	// stray
	// positive
}
