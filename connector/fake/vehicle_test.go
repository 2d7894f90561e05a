package fake_test

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/obdorch/obdorch/connector/fake"
)

func hexOf(s string) string { return strings.ToUpper(hex.EncodeToString([]byte(s))) }

// step is one request to the engine ECU at an offset from the start, with
// the expected replies (upper-case hex; none for a suppressed or missing
// answer).
type step struct {
	at   time.Duration
	req  string
	want []string
}

func TestVehicleUDS(t *testing.T) {
	const vin = "WVWZZZAUZKW123456"
	tests := []struct {
		name  string
		steps []step
	}{
		{"read VIN", []step{{0, "22F190", []string{"62F190" + hexOf(vin)}}}},
		{"read serial and part number", []step{{0, "22F18CF187", []string{"62F18C" + hexOf("ENG000007E0") + "F187" + hexOf("PN-7E0-0001")}}}},
		{"read unknown DID", []step{{0, "22ABCD", []string{"7F2231"}}}},
		{"read odd length", []step{{0, "22F1", []string{"7F2213"}}, {0, "22F19001", []string{"7F2213"}}}},
		{"read too long answer", []step{{0, "2212341234", []string{"7F2214"}}}},
		{"default session", []step{{0, "1001", []string{"5001003201F4"}}, {0, "22F186", []string{"62F18601"}}}},
		{"programming session", []step{{0, "1002", []string{"5002003201F4"}}, {0, "22F186", []string{"62F18602"}}}},
		{"unknown session", []step{{0, "1005", []string{"7F1012"}}}},
		{"session bad length", []step{{0, "10", []string{"7F1013"}}, {0, "100300", []string{"7F1013"}}}},
		{"session suppressed", []step{{0, "1083", nil}, {0, "22F186", []string{"62F18603"}}}},
		{"session falls back after 5 s", []step{
			{0, "1003", []string{"5003003201F4"}},
			{5 * time.Second, "22F186", []string{"62F18603"}},
			{10*time.Second + time.Millisecond, "22F186", []string{"62F18601"}},
		}},
		{"tester present keeps the session", []step{
			{0, "1003", []string{"5003003201F4"}},
			{4 * time.Second, "3E80", nil},
			{8 * time.Second, "3E00", []string{"7E00"}},
			{12 * time.Second, "22F186", []string{"62F18603"}},
		}},
		{"tester present", []step{{0, "3E00", []string{"7E00"}}, {0, "3E01", []string{"7F3E12"}}, {0, "3E", []string{"7F3E13"}}}},
		{"reset", []step{{0, "1003", []string{"5003003201F4"}}, {0, "1101", []string{"5101"}}, {0, "22F186", []string{"62F18601"}}, {0, "1104", []string{"7F1112"}}, {0, "11", []string{"7F1113"}}}},
		{"write outside extended session", []step{{0, "2E010100000002", []string{"7F2E7F"}}}},
		{"write", []step{
			{0, "1003", []string{"5003003201F4"}},
			{0, "2E010100000002", []string{"6E0101"}},
			{0, "220101", []string{"62010100000002"}},
		}},
		{"write bad length", []step{{0, "1003", []string{"5003003201F4"}}, {0, "2E0101", []string{"7F2E13"}}, {0, "2E01010000", []string{"7F2E13"}}}},
		{"write read-only or unknown DID", []step{{0, "1003", []string{"5003003201F4"}}, {0, "2EF19041", []string{"7F2E31"}}, {0, "2EABCD41", []string{"7F2E31"}}}},
		{"DTC by status mask", []step{{0, "190208", []string{"5902FF0301002F04200008"}}}},
		{"DTC mask filters", []step{{0, "190220", []string{"5902FF0301002F"}}, {0, "190240", []string{"5902FF"}}}},
		{"DTC count", []step{{0, "1901FF", []string{"5901FF010002"}}}},
		{"DTC bad sub-function and length", []step{{0, "1999", []string{"7F1912"}}, {0, "1902", []string{"7F1913"}}, {0, "19", []string{"7F1913"}}}},
		{"routine results", []step{{0, "3103FF00", []string{"7103FF0000"}}}},
		{"unknown routine", []step{{0, "31011234", []string{"7F3131"}}}},
		{"routine bad sub-function and length", []step{{0, "3104FF00", []string{"7F3112"}}, {0, "3101FF", []string{"7F3113"}}}},
		{"unknown service", []step{{0, "AA", []string{"7FAA11"}}, {0, "50", []string{"7F5011"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := fake.NewVehicle(fake.VehicleOptions{VIN: vin})
			start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
			for _, s := range tc.steps {
				req, err := hex.DecodeString(s.req)
				if err != nil {
					t.Fatal(err)
				}
				id, replies, ok := v.Handle(start.Add(s.at), 0x7E0, req)
				if !ok || id != 0x7E8 {
					t.Fatalf("Handle(%s) = id 0x%X, ok %v; want 0x7E8, true", s.req, id, ok)
				}
				var got []string
				for _, r := range replies {
					got = append(got, fake.EncodePayload(r.Payload))
				}
				if strings.Join(got, " ") != strings.Join(s.want, " ") {
					t.Fatalf("Handle(%s) at +%v = %v, want %v", s.req, s.at, got, s.want)
				}
			}
		})
	}
}

func TestVehicleRoutinePending(t *testing.T) {
	v := fake.NewVehicle(fake.VehicleOptions{PendingCount: 2, PendingSpacing: 300 * time.Millisecond})
	_, replies, _ := v.Handle(time.Now(), 0x7E1, []byte{0x31, 0x01, 0xFF, 0x00})
	want := []fake.Reply{
		{After: 0, Payload: []byte{0x7F, 0x31, 0x78}},
		{After: 300 * time.Millisecond, Payload: []byte{0x7F, 0x31, 0x78}},
		{After: 300 * time.Millisecond, Payload: []byte{0x71, 0x01, 0xFF, 0x00, 0x00}},
	}
	if len(replies) != len(want) {
		t.Fatalf("routine replies = %v, want %v", replies, want)
	}
	for i := range want {
		if replies[i].After != want[i].After || string(replies[i].Payload) != string(want[i].Payload) {
			t.Fatalf("reply %d = %+v, want %+v", i, replies[i], want[i])
		}
	}
}

func TestVehicleLayout(t *testing.T) {
	v := fake.NewVehicle(fake.VehicleOptions{})
	if v.VIN() != fake.DefaultVIN || len(fake.DefaultVIN) != 17 {
		t.Errorf("VIN() = %q, want the 17-character DefaultVIN", v.VIN())
	}
	tests := []struct {
		request, response uint32
		ok                bool
	}{
		{0x7E0, 0x7E8, true},
		{0x7E1, 0x7E9, true},
		{0x7E2, 0x7EA, true},
		{0x7E3, 0, false},
		{0x7DF, 0, false},
	}
	for _, tc := range tests {
		id, replies, ok := v.Handle(time.Now(), tc.request, []byte{0x3E, 0x00})
		if id != tc.response || ok != tc.ok || (ok && len(replies) != 1) {
			t.Errorf("Handle(0x%X, 3E00) = 0x%X, %v, %v; want 0x%X, %v", tc.request, id, replies, ok, tc.response, tc.ok)
		}
	}
	_, _, ok := v.Handle(time.Now(), 0x7E0, nil)
	if ok {
		t.Error("Handle with an empty request reported an answer")
	}
}

func TestDecodePayload(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"", "", true},
		{"22f190", "22F190", true},
		{"22F190", "22F190", true},
		{"2", "", false},
		{"zz", "", false},
		{strings.Repeat("ab", fake.MaxPayload), strings.Repeat("AB", fake.MaxPayload), true},
		{strings.Repeat("ab", fake.MaxPayload+1), "", false},
	}
	for _, tc := range tests {
		b, err := fake.DecodePayload(tc.in)
		if (err == nil) != tc.ok || (tc.ok && fake.EncodePayload(b) != tc.want) {
			t.Errorf("DecodePayload(%.12q) = %X, %v; want %.12s, ok %v", tc.in, b, err, tc.want, tc.ok)
		}
	}
}
