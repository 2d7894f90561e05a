package uds

import "strings"

// Status is the status byte of a DTC (ISO 14229-1, D.2): eight bits, each
// named by one of the constants below. It is also the mask of
// reportNumberOfDTCByStatusMask and reportDTCByStatusMask.
type Status byte

// DTC status bits.
const (
	TestFailed                         Status = 0x01
	TestFailedThisOperationCycle       Status = 0x02
	PendingDTC                         Status = 0x04
	ConfirmedDTC                       Status = 0x08
	TestNotCompletedSinceLastClear     Status = 0x10
	TestFailedSinceLastClear           Status = 0x20
	TestNotCompletedThisOperationCycle Status = 0x40
	WarningIndicatorRequested          Status = 0x80
	// AnyStatus as a mask selects every DTC with at least one status bit set.
	AnyStatus Status = 0xFF
)

var statusNames = [8]string{
	"testFailed",
	"testFailedThisOperationCycle",
	"pendingDTC",
	"confirmedDTC",
	"testNotCompletedSinceLastClear",
	"testFailedSinceLastClear",
	"testNotCompletedThisOperationCycle",
	"warningIndicatorRequested",
}

// Has reports whether every bit of bits is set.
func (s Status) Has(bits Status) bool { return s&bits == bits }

// Names returns the ISO names of the bits that are set, lowest bit first.
func (s Status) Names() []string {
	var out []string
	for i, n := range statusNames {
		if s&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// String returns the status as hex followed by the names of its set bits,
// e.g. "0x09 testFailed|confirmedDTC", or "0x00" when none is set.
func (s Status) String() string {
	out := "0x" + hex2(byte(s))
	if s != 0 {
		out += " " + strings.Join(s.Names(), "|")
	}
	return out
}

// DTC is one diagnostic trouble code with its status, as reported by
// ReadDTCInformation.
type DTC struct {
	// Code is the 3-byte DTC: the two bytes of the SAE J2012 code (e.g.
	// 0x0301 for P0301) and the failure type byte.
	Code   uint32
	Status Status
}

// Name returns the SAE J2012 form of the DTC's first two bytes: a letter
// (P powertrain, C chassis, B body, U network) and four hex digits, e.g.
// "P0301".
func (d DTC) Name() string {
	hi, lo := byte(d.Code>>16), byte(d.Code>>8)
	letter := "PCBU"[hi>>6]
	return string([]byte{letter, hexDigits[(hi>>4)&0x3], hexDigits[hi&0xF], hexDigits[lo>>4], hexDigits[lo&0xF]})
}

// FailureType returns the failure type byte (the DTC's third byte).
func (d DTC) FailureType() byte { return byte(d.Code) }

// String returns the name, the failure type when it is not zero, and the
// status, e.g. "P0301 status 0x2F testFailed|...".
func (d DTC) String() string {
	s := d.Name()
	if ft := d.FailureType(); ft != 0 {
		s += "-" + hex2(ft)
	}
	return s + " status " + d.Status.String()
}

// DTCReport is the answer to reportDTCByStatusMask (19 02) or
// reportSupportedDTC (19 0A).
type DTCReport struct {
	// Availability is the ECU's DTCStatusAvailabilityMask: the status bits it
	// supports.
	Availability Status
	DTCs         []DTC
}

// DTCCount is the answer to reportNumberOfDTCByStatusMask (19 01).
type DTCCount struct {
	Availability Status
	// Format is the DTCFormatIdentifier (0x01: ISO 14229-1).
	Format byte
	Count  int
}

// ReadDTCInformation sub-functions the SDK decodes.
const (
	ReportNumberOfDTCByStatusMask byte = 0x01
	ReportDTCByStatusMask         byte = 0x02
	ReportSupportedDTC            byte = 0x0A
)

// DTCCountRequest encodes 19 01 <mask>.
func DTCCountRequest(mask Status) []byte {
	return []byte{byte(ReadDTCInformation), ReportNumberOfDTCByStatusMask, byte(mask)}
}

// DTCsByStatusRequest encodes 19 02 <mask>.
func DTCsByStatusRequest(mask Status) []byte {
	return []byte{byte(ReadDTCInformation), ReportDTCByStatusMask, byte(mask)}
}

// SupportedDTCsRequest encodes 19 0A.
func SupportedDTCsRequest() []byte {
	return []byte{byte(ReadDTCInformation), ReportSupportedDTC}
}

// ParseDTCCount decodes 59 01 <availability> <format> <count: 2 bytes>.
func ParseDTCCount(resp []byte) (DTCCount, error) {
	if err := Positive(ReadDTCInformation, resp); err != nil {
		return DTCCount{}, err
	}
	if len(resp) != 6 || resp[1] != ReportNumberOfDTCByStatusMask {
		return DTCCount{}, formatErr(ReadDTCInformation, resp, "want 59 01 and 4 bytes")
	}
	return DTCCount{Availability: Status(resp[2]), Format: resp[3], Count: int(resp[4])<<8 | int(resp[5])}, nil
}

// ParseDTCReport decodes 59 <sub> <availability> followed by 4-byte
// records (3-byte DTC, status), the answer to sub-functions 02 and 0A.
func ParseDTCReport(sub byte, resp []byte) (DTCReport, error) {
	if err := Positive(ReadDTCInformation, resp); err != nil {
		return DTCReport{}, err
	}
	if len(resp) < 3 || resp[1] != sub {
		return DTCReport{}, formatErr(ReadDTCInformation, resp, "want 59 "+hex2(sub)+" and the availability mask")
	}
	recs := resp[3:]
	if len(recs)%4 != 0 {
		return DTCReport{}, formatErr(ReadDTCInformation, resp, "DTC records are 4 bytes each, got "+itoa(len(recs))+" bytes")
	}
	r := DTCReport{Availability: Status(resp[2]), DTCs: make([]DTC, 0, len(recs)/4)}
	for i := 0; i < len(recs); i += 4 {
		r.DTCs = append(r.DTCs, DTC{
			Code:   uint32(recs[i])<<16 | uint32(recs[i+1])<<8 | uint32(recs[i+2]),
			Status: Status(recs[i+3]),
		})
	}
	return r, nil
}

// AllDTCs is the groupOfDTC that clears every DTC (FF FF FF).
const AllDTCs uint32 = 0xFFFFFF

// ClearRequest encodes 14 <groupOfDTC: 3 bytes>.
func ClearRequest(group uint32) []byte {
	return []byte{byte(ClearDiagnosticInformation), byte(group >> 16), byte(group >> 8), byte(group)}
}

// ParseClear checks the answer 54.
func ParseClear(resp []byte) error {
	if err := Positive(ClearDiagnosticInformation, resp); err != nil {
		return err
	}
	if len(resp) != 1 {
		return formatErr(ClearDiagnosticInformation, resp, "want 54 alone")
	}
	return nil
}
