package uds

import (
	"encoding/binary"
	"time"
)

// Positive returns nil when resp is a positive response to service sid, a
// *NegativeResponseError when it is 7F <sid> <NRC>, and a *FormatError
// otherwise.
func Positive(sid SID, resp []byte) error {
	if len(resp) > 0 && resp[0] == byte(sid)+PositiveResponseOffset {
		return nil
	}
	if n := ParseNegative(sid, resp); n != nil {
		return n
	}
	return formatErr(sid, resp, "not an answer to "+sid.String())
}

// DiagnosticSession is a DiagnosticSessionControl sub-function.
type DiagnosticSession byte

// Diagnostic sessions of ISO 14229-1.
const (
	DefaultSession      DiagnosticSession = 0x01
	ProgrammingSession  DiagnosticSession = 0x02
	ExtendedSession     DiagnosticSession = 0x03
	SafetySystemSession DiagnosticSession = 0x04
	suppressPositiveBit                   = 0x80
)

// SessionTiming is the server's timing reported by DiagnosticSessionControl.
type SessionTiming struct {
	// P2 is the time the ECU takes at most to start answering.
	P2 time.Duration
	// P2Star is the most it takes after a responsePending (0x78).
	P2Star time.Duration
}

// SessionRequest encodes 10 <session>.
func SessionRequest(s DiagnosticSession) []byte {
	return []byte{byte(DiagnosticSessionControl), byte(s)}
}

// ParseSession decodes 50 <session> <P2: 2 bytes, ms> <P2*: 2 bytes, 10 ms>
// and checks that it echoes s.
func ParseSession(s DiagnosticSession, resp []byte) (SessionTiming, error) {
	if err := Positive(DiagnosticSessionControl, resp); err != nil {
		return SessionTiming{}, err
	}
	if len(resp) != 6 || resp[1]&^suppressPositiveBit != byte(s) {
		return SessionTiming{}, formatErr(DiagnosticSessionControl, resp, "want 50 "+hex2(byte(s))+" and 4 bytes of timing")
	}
	return SessionTiming{
		P2:     time.Duration(binary.BigEndian.Uint16(resp[2:])) * time.Millisecond,
		P2Star: time.Duration(binary.BigEndian.Uint16(resp[4:])) * 10 * time.Millisecond,
	}, nil
}

// ResetType is an ECUReset sub-function.
type ResetType byte

// Reset types of ISO 14229-1.
const (
	HardReset     ResetType = 0x01
	KeyOffOnReset ResetType = 0x02
	SoftReset     ResetType = 0x03
)

// ResetRequest encodes 11 <type>.
func ResetRequest(t ResetType) []byte { return []byte{byte(ECUReset), byte(t)} }

// ParseReset checks the answer 51 <type> (a power-down time may follow).
func ParseReset(t ResetType, resp []byte) error {
	if err := Positive(ECUReset, resp); err != nil {
		return err
	}
	if len(resp) < 2 || resp[1] != byte(t) {
		return formatErr(ECUReset, resp, "want 51 "+hex2(byte(t)))
	}
	return nil
}

// DID is a data identifier to read, with the size of its record when it is
// known. A response to several DIDs can only be split when the size of
// every record but the last is given.
type DID struct {
	ID uint16
	// Size is the record's length in bytes; 0 when unknown (allowed for the
	// last DID of a request only).
	Size int
}

// Data identifiers of ISO 14229-1 (annex C.1) that most ECUs serve.
const (
	DIDActiveDiagnosticSession uint16 = 0xF186
	DIDSparePartNumber         uint16 = 0xF187
	DIDECUSerialNumber         uint16 = 0xF18C
	DIDVIN                     uint16 = 0xF190
	DIDRepairShopCode          uint16 = 0xF198
)

// VIN is the DID of the vehicle identification number: 17 bytes.
var VIN = DID{ID: DIDVIN, Size: 17}

// DataRecord is the record of one DID in a ReadDataByIdentifier answer.
type DataRecord struct {
	ID   uint16
	Data []byte
}

// ReadDataRequest encodes 22 <DID> <DID>...
func ReadDataRequest(dids ...DID) []byte {
	out := make([]byte, 1, 1+2*len(dids))
	out[0] = byte(ReadDataByIdentifier)
	for _, d := range dids {
		out = binary.BigEndian.AppendUint16(out, d.ID)
	}
	return out
}

// ParseReadData splits the answer 62 <DID> <record> <DID> <record>... into
// one record per requested DID, in order, checking every echoed DID.
func ParseReadData(dids []DID, resp []byte) ([]DataRecord, error) {
	if err := Positive(ReadDataByIdentifier, resp); err != nil {
		return nil, err
	}
	out := make([]DataRecord, 0, len(dids))
	rest := resp[1:]
	for i, d := range dids {
		if len(rest) < 2 || binary.BigEndian.Uint16(rest) != d.ID {
			return nil, formatErr(ReadDataByIdentifier, resp, "DID "+hex4(d.ID)+" not echoed where expected")
		}
		rest = rest[2:]
		n := d.Size
		if n == 0 {
			if i != len(dids)-1 {
				return nil, formatErr(ReadDataByIdentifier, resp, "the size of DID "+hex4(d.ID)+" is needed to split the answer")
			}
			n = len(rest)
		}
		if len(rest) < n {
			return nil, formatErr(ReadDataByIdentifier, resp, "record of DID "+hex4(d.ID)+" is shorter than "+itoa(n)+" bytes")
		}
		out = append(out, DataRecord{ID: d.ID, Data: append([]byte(nil), rest[:n]...)})
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return nil, formatErr(ReadDataByIdentifier, resp, itoa(len(rest))+" bytes left after the last record")
	}
	return out, nil
}

// WriteDataRequest encodes 2E <DID> <data>.
func WriteDataRequest(id uint16, data []byte) []byte {
	out := binary.BigEndian.AppendUint16([]byte{byte(WriteDataByIdentifier)}, id)
	return append(out, data...)
}

// ParseWriteData checks the answer 6E <DID>.
func ParseWriteData(id uint16, resp []byte) error {
	if err := Positive(WriteDataByIdentifier, resp); err != nil {
		return err
	}
	if len(resp) != 3 || binary.BigEndian.Uint16(resp[1:]) != id {
		return formatErr(WriteDataByIdentifier, resp, "want 6E "+hex4(id))
	}
	return nil
}

// RoutineControlType is a RoutineControl sub-function.
type RoutineControlType byte

// Routine control types of ISO 14229-1.
const (
	StartRoutine          RoutineControlType = 0x01
	StopRoutine           RoutineControlType = 0x02
	RequestRoutineResults RoutineControlType = 0x03
)

// RoutineResult is the answer to RoutineControl.
type RoutineResult struct {
	Control RoutineControlType
	ID      uint16
	// Status is what follows the routine identifier: routineInfo and the
	// routineStatusRecord, whose meaning the ECU's documentation gives.
	Status []byte
}

// RoutineRequest encodes 31 <type> <routine id> <option record>.
func RoutineRequest(t RoutineControlType, id uint16, option []byte) []byte {
	out := binary.BigEndian.AppendUint16([]byte{byte(RoutineControl), byte(t)}, id)
	return append(out, option...)
}

// ParseRoutine decodes 71 <type> <routine id> <status...>.
func ParseRoutine(t RoutineControlType, id uint16, resp []byte) (RoutineResult, error) {
	if err := Positive(RoutineControl, resp); err != nil {
		return RoutineResult{}, err
	}
	if len(resp) < 4 || resp[1] != byte(t) || binary.BigEndian.Uint16(resp[2:]) != id {
		return RoutineResult{}, formatErr(RoutineControl, resp, "want 71 "+hex2(byte(t))+" "+hex4(id))
	}
	return RoutineResult{Control: t, ID: id, Status: append([]byte(nil), resp[4:]...)}, nil
}

// SeedRequest encodes 27 <level> (requestSeed; level is odd).
func SeedRequest(level byte) []byte { return []byte{byte(SecurityAccess), level} }

// ParseSeed decodes 67 <level> <seed>. An all-zero seed means the level is
// already unlocked.
func ParseSeed(level byte, resp []byte) ([]byte, error) {
	if err := Positive(SecurityAccess, resp); err != nil {
		return nil, err
	}
	if len(resp) < 3 || resp[1] != level {
		return nil, formatErr(SecurityAccess, resp, "want 67 "+hex2(level)+" and a seed")
	}
	return append([]byte(nil), resp[2:]...), nil
}

// KeyRequest encodes 27 <level+1> <key> (sendKey).
func KeyRequest(level byte, key []byte) []byte {
	return append([]byte{byte(SecurityAccess), level + 1}, key...)
}

// ParseKey checks the answer 67 <level+1>.
func ParseKey(level byte, resp []byte) error {
	if err := Positive(SecurityAccess, resp); err != nil {
		return err
	}
	if len(resp) != 2 || resp[1] != level+1 {
		return formatErr(SecurityAccess, resp, "want 67 "+hex2(level+1))
	}
	return nil
}

// IOControlParameter is the inputOutputControlParameter of
// InputOutputControlByIdentifier.
type IOControlParameter byte

// Control parameters of ISO 14229-1 (annex E.1).
const (
	ReturnControlToECU  IOControlParameter = 0x00
	ResetToDefault      IOControlParameter = 0x01
	FreezeCurrentState  IOControlParameter = 0x02
	ShortTermAdjustment IOControlParameter = 0x03
)

// IOControlRequest encodes 2F <DID> <parameter> <control state...>.
func IOControlRequest(id uint16, p IOControlParameter, state []byte) []byte {
	out := binary.BigEndian.AppendUint16([]byte{byte(InputOutputControlByIdentifier)}, id)
	out = append(out, byte(p))
	return append(out, state...)
}

// ParseIOControl decodes 6F <DID> <parameter> <controlStatusRecord> and
// returns the status record (the output's state as the ECU reports it).
func ParseIOControl(id uint16, p IOControlParameter, resp []byte) ([]byte, error) {
	if err := Positive(InputOutputControlByIdentifier, resp); err != nil {
		return nil, err
	}
	if len(resp) < 4 || binary.BigEndian.Uint16(resp[1:]) != id || resp[3] != byte(p) {
		return nil, formatErr(InputOutputControlByIdentifier, resp, "want 6F "+hex4(id)+" "+hex2(byte(p)))
	}
	return append([]byte(nil), resp[4:]...), nil
}

func hex4(v uint16) string { return hex2(byte(v>>8)) + hex2(byte(v)) }
