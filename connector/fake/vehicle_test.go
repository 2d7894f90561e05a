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
		{"supported DTCs", []step{{0, "190A", []string{"590AFF0301002F0420000801710000"}}, {0, "190A00", []string{"7F1913"}}}},
		{"clear all DTCs", []step{
			{0, "14FFFFFF", []string{"54"}},
			{0, "1902FF", []string{"5902FF0301005004200050"}},
			{0, "190A", []string{"590AFF030100500420005001710000"}},
		}},
		{"clear one DTC", []step{{0, "14030100", []string{"54"}}, {0, "1902FF", []string{"5902FF0301005004200008"}}}},
		{"clear unknown DTC or bad length", []step{{0, "14123456", []string{"7F1431"}}, {0, "14FFFF", []string{"7F1413"}}}},
		{"security access in the default session", []step{{0, "2701", []string{"7F277F"}}}},
		{"security access wrong use", []step{
			{0, "1003", []string{"5003003201F4"}},
			{0, "270200000000", []string{"7F2724"}},
			{0, "2703", []string{"7F2712"}},
			{0, "270100", []string{"7F2713"}},
			{0, "270200", []string{"7F2713"}},
			{0, "27", []string{"7F2713"}},
		}},
		{"fan duty", []step{{0, "220201", []string{"62020128"}}}},
		{"io control in the default session", []step{{0, "2F02010332", []string{"7F2F7F"}}}},
		{"io control wrong use", []step{
			{0, "1003", []string{"5003003201F4"}},
			{0, "2F02010332", []string{"7F2F33"}},
			{0, "2FABCD00", []string{"7F2F31"}},
			{0, "2F020104", []string{"7F2F31"}},
			{0, "2F020103", []string{"7F2F13"}},
			{0, "2F0201", []string{"7F2F13"}},
		}},
		{"write secured DID without security access", []step{
			{0, "1003", []string{"5003003201F4"}},
			{0, "2EF198" + hexOf("1234567890"), []string{"7F2E33"}},
		}},
		{"self test needs the extended session and security access", []step{
			{0, "31010203", []string{"7F3131"}},
			{0, "1003", []string{"5003003201F4"}},
			{0, "31010203", []string{"7F3133"}},
		}},
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

// unlock runs the seed and key exchange of security access at time now and
// fails the test unless the ECU grants it.
func unlock(t *testing.T, v *fake.Vehicle, now time.Time) {
	t.Helper()
	_, replies, _ := v.Handle(now, 0x7E0, []byte{0x27, 0x01})
	if len(replies) != 1 || len(replies[0].Payload) != 6 || replies[0].Payload[0] != 0x67 {
		t.Fatalf("requestSeed = %v, want 67 01 and a 4-byte seed", replies)
	}
	req := append([]byte{0x27, 0x02}, fake.DemoSecurityKey(replies[0].Payload[2:])...)
	_, replies, _ = v.Handle(now, 0x7E0, req)
	if len(replies) != 1 || fake.EncodePayload(replies[0].Payload) != "6702" {
		t.Fatalf("sendKey = %v, want 67 02", replies)
	}
}

// run sends the steps to the engine ECU from start and checks each answer.
func run(t *testing.T, v *fake.Vehicle, start time.Time, steps []step) {
	t.Helper()
	for _, s := range steps {
		req, err := hex.DecodeString(s.req)
		if err != nil {
			t.Fatal(err)
		}
		_, replies, _ := v.Handle(start.Add(s.at), 0x7E0, req)
		var got []string
		for _, r := range replies {
			got = append(got, fake.EncodePayload(r.Payload))
		}
		if strings.Join(got, " ") != strings.Join(s.want, " ") {
			t.Fatalf("Handle(%s) at +%v = %v, want %v", s.req, s.at, got, s.want)
		}
	}
}

func TestVehicleSecurityAccess(t *testing.T) {
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	t.Run("unlocked services", func(t *testing.T) {
		v := fake.NewVehicle(fake.VehicleOptions{})
		run(t, v, start, []step{{0, "1003", []string{"5003003201F4"}}})
		unlock(t, v, start)
		run(t, v, start, []step{
			{0, "2701", []string{"670100000000"}}, // already unlocked: zero seed
			{0, "2F02010332", []string{"6F02010332"}},
			{0, "220201", []string{"62020132"}},
			{0, "2F02010200", []string{"7F2F13"}},
			{0, "2F020102", []string{"6F02010232"}},
			{0, "2F02010365", []string{"7F2F31"}},
			{0, "2F020101", []string{"6F02010100"}},
			{0, "2F020100", []string{"6F02010028"}},
			{0, "2EF198" + hexOf("1234567890"), []string{"6EF198"}},
			{0, "22F198", []string{"62F198" + hexOf("1234567890")}},
			{0, "31030203", []string{"7F3124"}},
			{0, "31020203", []string{"7F3124"}},
			{0, "31010203", []string{"7101020300"}},
			{0, "31030203", []string{"710302030000"}},
			{0, "31020203", []string{"7102020300"}},
			{0, "31020203", []string{"7F3124"}},
			{0, "2F02010332", []string{"6F02010332"}},
			// A session change locks again and returns the output to the ECU.
			{0, "1003", []string{"5003003201F4"}},
			{0, "2F02010332", []string{"7F2F33"}},
			{0, "220201", []string{"62020128"}},
		})
	})
	t.Run("S3 timeout locks", func(t *testing.T) {
		v := fake.NewVehicle(fake.VehicleOptions{})
		run(t, v, start, []step{{0, "1003", []string{"5003003201F4"}}})
		unlock(t, v, start)
		run(t, v, start, []step{
			{4 * time.Second, "3E80", nil},
			{8 * time.Second, "2F02010332", []string{"6F02010332"}},
			{14 * time.Second, "22F186", []string{"62F18601"}},
			{14 * time.Second, "1003", []string{"5003003201F4"}},
			{14 * time.Second, "2F02010332", []string{"7F2F33"}},
		})
	})
	t.Run("wrong keys", func(t *testing.T) {
		v := fake.NewVehicle(fake.VehicleOptions{})
		run(t, v, start, []step{{0, "1003", []string{"5003003201F4"}}})
		for i, want := range []string{"7F2735", "7F2735", "7F2736"} {
			_, replies, _ := v.Handle(start, 0x7E0, []byte{0x27, 0x01})
			if len(replies) != 1 || len(replies[0].Payload) != 6 {
				t.Fatalf("attempt %d: requestSeed = %v", i, replies)
			}
			key := fake.DemoSecurityKey(replies[0].Payload[2:])
			key[0] ^= 0xFF
			_, replies, _ = v.Handle(start, 0x7E0, append([]byte{0x27, 0x02}, key...))
			if got := fake.EncodePayload(replies[0].Payload); got != want {
				t.Fatalf("attempt %d: sendKey(wrong key) = %s, want %s", i, got, want)
			}
		}
		run(t, v, start, []step{
			{time.Second, "2701", []string{"7F2737"}},
			{4 * time.Second, "3E80", nil},
			{8 * time.Second, "3E80", nil},
			{fake.SecurityDelay - time.Millisecond, "2701", []string{"7F2737"}},
		})
		_, replies, _ := v.Handle(start.Add(fake.SecurityDelay), 0x7E0, []byte{0x27, 0x01})
		if len(replies) != 1 || len(replies[0].Payload) != 6 {
			t.Fatalf("requestSeed after the delay = %v, want a seed", replies)
		}
	})
}

func TestDemoSecurityKey(t *testing.T) {
	tests := []struct{ seed, key string }{
		{"00000001", "4F424447"},
		{"80000000", "4F42444B"},
		{"12345678", "DEE0F78F"},
	}
	for _, tc := range tests {
		seed, _ := hex.DecodeString(tc.seed)
		if got := fake.EncodePayload(fake.DemoSecurityKey(seed)); got != tc.key {
			t.Errorf("DemoSecurityKey(%s) = %s, want %s", tc.seed, got, tc.key)
		}
	}
	if k := fake.DemoSecurityKey([]byte{1, 2, 3}); k != nil {
		t.Errorf("DemoSecurityKey(3 bytes) = %X, want nil", k)
	}
}
