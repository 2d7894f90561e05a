package partnertest

import (
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/obdorch/obdorch/partner"
)

// Seed adds n pending demo tickets, each with a connector of its own that is busy with it and a
// simulated vehicle (the connector's VIN is the ticket's), plus n/4+1 free connectors with
// vehicles of their own. Ids, ticket numbers, serial numbers and VINs are drawn from seed alone,
// so the same seed on an empty fake gives the same world; timestamps are the fake's now. Seed
// returns the tickets it added.
func (f *Fake) Seed(n int, seed int64) []partner.Ticket {
	n = max(n, 0)
	r := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	rnd := r.Uint64
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]partner.Ticket, 0, n)
	for i := range n {
		customer := newUUID(rnd)
		conn, err := f.addConnectorLocked(partner.Connector{
			CustomerID:      &customer,
			IsOnline:        true,
			SoftwareVersion: "2.14.0",
			HardwareVersion: "3",
			HardwareType:    "classic",
		}, rnd)
		if err != nil {
			panic(err) // unreachable: every value is fresh
		}
		t, err := f.addTicketLocked(partner.Ticket{
			State:               partner.TicketPending,
			ConnectionID:        ptr(newUUID(rnd)),
			CustomerID:          &customer,
			CustomerConnectorID: &conn.ID,
			CustomerChannelID:   ptr(newUUID(rnd)),
			CustomerReference:   "demo ticket " + strconv.Itoa(i+1),
			VehicleModelID:      1 + int64(rnd()%5000),
			VIN:                 conn.VINNumber,
		}, rnd)
		if err != nil {
			panic(err) // unreachable: every value is fresh
		}
		out = append(out, t)
	}
	for range n/4 + 1 {
		if _, err := f.addConnectorLocked(partner.Connector{
			CustomerID:      ptr(newUUID(rnd)),
			IsOnline:        true,
			SoftwareVersion: "2.14.0",
			HardwareVersion: "3",
			HardwareType:    "classic",
		}, rnd); err != nil {
			panic(err) // unreachable: every value is fresh
		}
	}
	return out
}

// newUUID formats 128 random bits as a version 4 UUID.
func newUUID(rnd func() uint64) string {
	var b [16]byte
	hi, lo := rnd(), rnd()
	for i := range 8 {
		b[i], b[8+i] = byte(hi>>(56-8*i)), byte(lo>>(56-8*i))
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Real world manufacturer identifiers, so the VINs look familiar.
var wmis = []string{"WVW", "WBA", "WAU", "WDD", "VF1", "VF3", "ZFA", "YV1", "TMB", "SAL", "JTD", "1FA"}

const (
	vinChars  = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789" // no I, O or Q
	vinYears  = "ABCDEFGHJKLMNPRSTVWXY123456789"
	vinDigits = "0123456789"
)

// newVIN returns a 17-character VIN with a valid ISO 3779 check digit in position 9.
func newVIN(rnd func() uint64) string {
	pick := func(set string) byte { return set[rnd()%uint64(len(set))] }
	v := []byte(wmis[rnd()%uint64(len(wmis))])
	for range 5 {
		v = append(v, pick(vinChars))
	}
	v = append(v, '0', pick(vinYears), pick(vinChars))
	for range 6 {
		v = append(v, pick(vinDigits))
	}
	v[8] = vinCheckDigit(string(v))
	return string(v)
}

// vinCheckDigit computes the check digit of a VIN (position 9, 0-9 or X).
func vinCheckDigit(vin string) byte {
	weights := [17]int{8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2}
	sum := 0
	for i := range 17 {
		sum += vinValue(vin[i]) * weights[i]
	}
	if d := sum % 11; d < 10 {
		return byte('0' + d)
	}
	return 'X'
}

func vinValue(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'H':
		return int(c-'A') + 1
	case c >= 'J' && c <= 'R':
		return []int{1, 2, 3, 4, 5, 0, 7, 0, 9}[c-'J']
	case c >= 'S' && c <= 'Z':
		return int(c-'S') + 2
	}
	return 0
}
