package uds_test

import (
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/obdorch/obdorch/sdk/uds"
)

func b(t *testing.T, s string) []byte {
	t.Helper()
	out, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestNames(t *testing.T) {
	tests := []struct{ got, want string }{
		{uds.SecurityAccessDenied.String(), "securityAccessDenied"},
		{uds.ServiceNotSupportedInActiveSession.String(), "serviceNotSupportedInActiveSession"},
		{uds.NRC(0x99).String(), "NRC 0x99"},
		{uds.ReadDataByIdentifier.String(), "ReadDataByIdentifier"},
		{uds.SID(0xAA).String(), "SID 0xAA"},
		{(&uds.NegativeResponseError{SID: 0x27, NRC: 0x35}).Error(), "uds: SecurityAccess (0x27): invalidKey (0x35)"},
		{uds.Status(0x09).String(), "0x09 testFailed|confirmedDTC"},
		{uds.Status(0).String(), "0x00"},
		{uds.DTC{Code: 0x030100, Status: 0x2F}.Name(), "P0301"},
		{uds.DTC{Code: 0x923400}.Name(), "B1234"},
		{uds.DTC{Code: 0x4A1B00}.Name(), "C0A1B"},
		{uds.DTC{Code: 0xC10000}.Name(), "U0100"},
		{uds.DTC{Code: 0x03011C, Status: 0x08}.String(), "P0301-1C status 0x08 confirmedDTC"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestNegativeIs(t *testing.T) {
	err := error(&uds.NegativeResponseError{SID: uds.WriteDataByIdentifier, NRC: uds.SecurityAccessDenied})
	if !errors.Is(err, &uds.NegativeResponseError{NRC: uds.SecurityAccessDenied}) {
		t.Error("errors.Is(any SID) = false, want true")
	}
	if errors.Is(err, &uds.NegativeResponseError{SID: uds.ReadDataByIdentifier, NRC: uds.SecurityAccessDenied}) {
		t.Error("errors.Is(other SID) = true, want false")
	}
	if errors.Is(err, &uds.NegativeResponseError{NRC: uds.InvalidKey}) {
		t.Error("errors.Is(other NRC) = true, want false")
	}
}

func TestParse(t *testing.T) {
	neg := func(sid uds.SID, nrc uds.NRC) error { return &uds.NegativeResponseError{SID: sid, NRC: nrc} }
	t.Run("session", func(t *testing.T) {
		got, err := uds.ParseSession(uds.ExtendedSession, b(t, "5003003201F4"))
		if err != nil || got != (uds.SessionTiming{P2: 50 * time.Millisecond, P2Star: 5 * time.Second}) {
			t.Errorf("ParseSession = %+v, %v", got, err)
		}
		if _, err := uds.ParseSession(uds.ExtendedSession, b(t, "5001003201F4")); err == nil {
			t.Error("ParseSession(other session) = nil error")
		}
		if _, err := uds.ParseSession(uds.ExtendedSession, b(t, "7F1012")); !errors.Is(err, neg(0x10, 0x12)) {
			t.Errorf("ParseSession(negative) = %v", err)
		}
	})
	t.Run("DTCs", func(t *testing.T) {
		got, err := uds.ParseDTCReport(uds.ReportDTCByStatusMask, b(t, "5902FF 0301002F 04200008"))
		want := uds.DTCReport{Availability: 0xFF, DTCs: []uds.DTC{{Code: 0x030100, Status: 0x2F}, {Code: 0x042000, Status: 0x08}}}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseDTCReport = %+v, %v; want %+v", got, err, want)
		}
		for _, bad := range []string{"5902FF030100", "590AFF", "5902"} {
			if _, err := uds.ParseDTCReport(uds.ReportDTCByStatusMask, b(t, bad)); err == nil {
				t.Errorf("ParseDTCReport(%s) = nil error", bad)
			}
		}
		n, err := uds.ParseDTCCount(b(t, "5901FF010002"))
		if err != nil || n != (uds.DTCCount{Availability: 0xFF, Format: 1, Count: 2}) {
			t.Errorf("ParseDTCCount = %+v, %v", n, err)
		}
	})
	t.Run("read data", func(t *testing.T) {
		dids := []uds.DID{{ID: 0xF186, Size: 1}, {ID: 0xF190}}
		got, err := uds.ParseReadData(dids, b(t, "62 F186 03 F190 414243"))
		want := []uds.DataRecord{{ID: 0xF186, Data: []byte{3}}, {ID: 0xF190, Data: []byte("ABC")}}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseReadData = %+v, %v", got, err)
		}
		for _, bad := range []string{"62 F186 03 F191 41", "62 F186", "62 F190 41"} {
			if _, err := uds.ParseReadData(dids, b(t, bad)); err == nil {
				t.Errorf("ParseReadData(%s) = nil error", bad)
			}
		}
		if _, err := uds.ParseReadData([]uds.DID{{ID: 0xF186}, {ID: 0xF190}}, b(t, "62 F186 03 F190 41")); err == nil {
			t.Error("ParseReadData without the first size = nil error")
		}
	})
	t.Run("routine, security, io", func(t *testing.T) {
		r, err := uds.ParseRoutine(uds.RequestRoutineResults, 0x0203, b(t, "710302030000"))
		if err != nil || !reflect.DeepEqual(r, uds.RoutineResult{Control: 3, ID: 0x0203, Status: []byte{0, 0}}) {
			t.Errorf("ParseRoutine = %+v, %v", r, err)
		}
		if _, err := uds.ParseRoutine(uds.StartRoutine, 0x0203, b(t, "7101FF0000")); err == nil {
			t.Error("ParseRoutine(other routine) = nil error")
		}
		seed, err := uds.ParseSeed(1, b(t, "670112345678"))
		if err != nil || hex.EncodeToString(seed) != "12345678" {
			t.Errorf("ParseSeed = %x, %v", seed, err)
		}
		if err := uds.ParseKey(1, b(t, "6702")); err != nil {
			t.Errorf("ParseKey = %v", err)
		}
		if err := uds.ParseKey(1, b(t, "7F2735")); !errors.Is(err, neg(0x27, uds.InvalidKey)) {
			t.Errorf("ParseKey(negative) = %v", err)
		}
		st, err := uds.ParseIOControl(0x0201, uds.ShortTermAdjustment, b(t, "6F02010332"))
		if err != nil || !reflect.DeepEqual(st, []byte{0x32}) {
			t.Errorf("ParseIOControl = %x, %v", st, err)
		}
		if err := uds.ParseClear(b(t, "54")); err != nil {
			t.Errorf("ParseClear = %v", err)
		}
		if err := uds.ParseWriteData(0xF198, b(t, "6EF198")); err != nil {
			t.Errorf("ParseWriteData = %v", err)
		}
		if err := uds.ParseReset(uds.HardReset, b(t, "5101")); err != nil {
			t.Errorf("ParseReset = %v", err)
		}
		var fe *uds.FormatError
		if err := uds.ParseReset(uds.HardReset, b(t, "6201")); !errors.As(err, &fe) {
			t.Errorf("ParseReset(stray) = %v, want a FormatError", err)
		}
	})
}

func TestRequests(t *testing.T) {
	tests := []struct {
		got  []byte
		want string
	}{
		{uds.SessionRequest(uds.ExtendedSession), "1003"},
		{uds.ResetRequest(uds.SoftReset), "1103"},
		{uds.ClearRequest(uds.AllDTCs), "14ffffff"},
		{uds.DTCCountRequest(uds.ConfirmedDTC), "190108"},
		{uds.DTCsByStatusRequest(uds.AnyStatus), "1902ff"},
		{uds.SupportedDTCsRequest(), "190a"},
		{uds.ReadDataRequest(uds.VIN, uds.DID{ID: 0xF18C}), "22f190f18c"},
		{uds.WriteDataRequest(0x0101, []byte{1, 2}), "2e01010102"},
		{uds.RoutineRequest(uds.StartRoutine, 0xFF00, nil), "3101ff00"},
		{uds.SeedRequest(1), "2701"},
		{uds.KeyRequest(1, []byte{0xAB}), "2702ab"},
		{uds.IOControlRequest(0x0201, uds.ShortTermAdjustment, []byte{50}), "2f02010332"},
	}
	for _, tc := range tests {
		if hex.EncodeToString(tc.got) != tc.want {
			t.Errorf("request = %x, want %s", tc.got, tc.want)
		}
	}
}
