package fake

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"time"
)

// MaxPayload is the largest ISO-TP message in bytes (12-bit length of an
// ISO 15765-2 first frame).
const MaxPayload = 4095

// UDS service identifiers answered by the simulated ECUs.
const (
	sidSessionControl   = 0x10
	sidECUReset         = 0x11
	sidClearDTC         = 0x14
	sidReadDTC          = 0x19
	sidReadDataByID     = 0x22
	sidSecurityAccess   = 0x27
	sidWriteDataByID    = 0x2E
	sidIOControl        = 0x2F
	sidRoutineControl   = 0x31
	sidTesterPresent    = 0x3E
	sidNegativeResponse = 0x7F
)

// UDS negative response codes (ISO 14229-1, table A.1).
const (
	NRCServiceNotSupported                = 0x11
	NRCSubFunctionNotSupported            = 0x12
	NRCIncorrectMessageLength             = 0x13
	NRCResponseTooLong                    = 0x14
	NRCBusyRepeatRequest                  = 0x21
	NRCRequestSequenceError               = 0x24
	NRCRequestOutOfRange                  = 0x31
	NRCSecurityAccessDenied               = 0x33
	NRCInvalidKey                         = 0x35
	NRCExceededNumberOfAttempts           = 0x36
	NRCRequiredTimeDelayNotExpired        = 0x37
	NRCResponsePending                    = 0x78
	NRCServiceNotSupportedInActiveSession = 0x7F
)

// UDS diagnostic sessions (service 0x10 sub-functions).
const (
	SessionDefault     byte = 0x01
	SessionProgramming byte = 0x02
	SessionExtended    byte = 0x03
)

// Data identifiers served by every simulated ECU.
const (
	DIDVIN          uint16 = 0xF190 // VIN, 17 ASCII bytes, read-only
	DIDSerialNumber uint16 = 0xF18C // ECU serial number, ASCII, read-only
	DIDPartNumber   uint16 = 0xF187 // spare part number, ASCII, read-only
	DIDActiveSess   uint16 = 0xF186 // active diagnostic session, 1 byte, read-only
	DIDCoding       uint16 = 0x0101 // coding value, 4 bytes, writable in the extended session
	DIDLargeRecord  uint16 = 0x1234 // 4000-byte record that needs multi-frame ISO-TP
	DIDTesterCode   uint16 = 0xF198 // repair shop code, 10 ASCII bytes, writable in the extended session with security access
	DIDFanDuty      uint16 = 0x0201 // cooling fan duty in percent, 1 byte; read with 0x22, controlled with 0x2F
)

// Routine identifiers served by every simulated ECU.
const (
	// RoutineErase answers "response pending" several times before its
	// positive response; any session, no security access.
	RoutineErase uint16 = 0xFF00
	// RoutineSelfTest needs the extended session and security access; its
	// results can be read once it was started, and it can be stopped while
	// it runs.
	RoutineSelfTest uint16 = 0x0203
)

// SecurityDelay is how long an ECU refuses seeds after
// SecurityMaxAttempts wrong keys in a row.
const SecurityDelay = 10 * time.Second

// SecurityMaxAttempts is the number of wrong keys in a row after which an
// ECU answers exceededNumberOfAttempts and starts SecurityDelay.
const SecurityMaxAttempts = 3

// fanDutyECU is the fan duty the ECU chooses itself while no tester
// controls it.
const fanDutyECU = 40

// DemoSecurityKey is the key function of the simulated ECUs' security access
// (service 0x27, level 01/02): the 4-byte seed read as a big-endian number,
// rotated left by 3 bits and XORed with 0x4F42444F ("OBDO"), written back as
// 4 big-endian bytes. Real ECUs keep their key functions secret; this one is
// public so that examples can unlock the fake. It returns nil for a seed that
// is not 4 bytes long.
func DemoSecurityKey(seed []byte) []byte {
	if len(seed) != 4 {
		return nil
	}
	k := bits.RotateLeft32(binary.BigEndian.Uint32(seed), 3) ^ 0x4F42444F
	return binary.BigEndian.AppendUint32(nil, k)
}

// LargeRecordSize is the length of the record behind DIDLargeRecord.
const LargeRecordSize = 4000

// DefaultVIN is the VIN of a vehicle created without one.
const DefaultVIN = "WVWZZZAUZKW000001"

// ECUConfig places one simulated ECU on the CAN bus.
type ECUConfig struct {
	Name       string // short name, e.g. "engine"
	RequestID  uint32 // CAN id the ECU listens on
	ResponseID uint32 // CAN id the ECU answers on
}

// DefaultECUs returns the ECUs of a vehicle built without an explicit list:
//
//	name          request  response
//	engine        0x7E0    0x7E8
//	transmission  0x7E1    0x7E9
//	body          0x7E2    0x7EA
func DefaultECUs() []ECUConfig {
	return []ECUConfig{
		{Name: "engine", RequestID: 0x7E0, ResponseID: 0x7E8},
		{Name: "transmission", RequestID: 0x7E1, ResponseID: 0x7E9},
		{Name: "body", RequestID: 0x7E2, ResponseID: 0x7EA},
	}
}

// VehicleOptions configures NewVehicle. Zero fields take the documented
// defaults.
type VehicleOptions struct {
	VIN            string        // default DefaultVIN
	ECUs           []ECUConfig   // default DefaultECUs()
	SessionTimeout time.Duration // S3 server timer; default 5 s
	PendingCount   int           // 0x78 answers before the RoutineErase result; default 3
	PendingSpacing time.Duration // time between those answers; default 200 ms
}

// Reply is one answer of an ECU: After is the delay since the previous reply
// (or since the request, for the first one).
type Reply struct {
	After   time.Duration
	Payload []byte
}

// Vehicle is the simulated car behind a connector: a set of UDS ECUs on CAN
// ids. It is pure logic (time comes in as an argument) and safe for
// concurrent use.
type Vehicle struct {
	mu   sync.Mutex
	vin  string
	opts VehicleOptions
	ecus map[uint32]*ecu // by request id
}

type dtc struct {
	code   [3]byte
	status byte
}

type ecu struct {
	cfg         ECUConfig
	session     byte
	lastRequest time.Time
	dids        map[uint16][]byte
	writable    map[uint16]bool
	secured     map[uint16]bool // writable DIDs that also need security access
	dtcs        []dtc

	// Security access (0x27): unlocked until the session changes; seed is
	// the seed handed out and not yet answered with a key.
	unlocked    bool
	seed        []byte
	seeds       uint32 // seeds handed out, for the next seed's value
	failedKeys  int
	lockedUntil time.Time

	// fanOverride is set while a tester controls DIDFanDuty (0x2F).
	fanOverride bool
	fanDuty     byte
	// selfTest is the state of RoutineSelfTest.
	selfTest routineState
}

type routineState uint8

const (
	routineIdle routineState = iota
	routineRunning
	routineStopped
)

// resetVolatile is what a session change or an ECU reset does: security
// access is locked again, controlled outputs return to the ECU and a
// running routine stops.
func (e *ecu) resetVolatile() {
	e.unlocked, e.seed, e.failedKeys = false, nil, 0
	e.fanOverride, e.fanDuty = false, fanDutyECU
	if e.selfTest == routineRunning {
		e.selfTest = routineStopped
	}
}

// NewVehicle builds a vehicle with its ECUs in their power-on state.
func NewVehicle(opts VehicleOptions) *Vehicle {
	if opts.VIN == "" {
		opts.VIN = DefaultVIN
	}
	if len(opts.ECUs) == 0 {
		opts.ECUs = DefaultECUs()
	}
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = 5 * time.Second
	}
	if opts.PendingCount <= 0 {
		opts.PendingCount = 3
	}
	if opts.PendingSpacing <= 0 {
		opts.PendingSpacing = 200 * time.Millisecond
	}
	opts.ECUs = slices.Clone(opts.ECUs)
	v := &Vehicle{vin: opts.VIN, opts: opts, ecus: make(map[uint32]*ecu, len(opts.ECUs))}
	for _, c := range opts.ECUs {
		v.ecus[c.RequestID] = newECU(c, opts.VIN)
	}
	return v
}

func newECU(c ECUConfig, vin string) *ecu {
	large := make([]byte, LargeRecordSize)
	for i := range large {
		large[i] = byte(i)
	}
	tag := strings.ToUpper(c.Name)
	if len(tag) > 3 {
		tag = tag[:3]
	}
	e := &ecu{
		cfg:     c,
		session: SessionDefault,
		dids: map[uint16][]byte{
			DIDVIN:          []byte(vin),
			DIDSerialNumber: fmt.Appendf(nil, "%s%08X", tag, c.RequestID),
			DIDPartNumber:   fmt.Appendf(nil, "PN-%03X-0001", c.RequestID),
			DIDCoding:       {0x00, 0x00, 0x00, 0x01},
			DIDLargeRecord:  large,
			DIDTesterCode:   []byte("0000000000"),
		},
		writable: map[uint16]bool{DIDCoding: true, DIDTesterCode: true},
		secured:  map[uint16]bool{DIDTesterCode: true},
		fanDuty:  fanDutyECU,
	}
	// Each ECU also supports one DTC that is not stored (status 0x00): it
	// shows in reportSupportedDTC (19 0A) only.
	switch c.Name {
	case "engine":
		e.dtcs = []dtc{{[3]byte{0x03, 0x01, 0x00}, 0x2F}, {[3]byte{0x04, 0x20, 0x00}, 0x08}, {[3]byte{0x01, 0x71, 0x00}, 0x00}} // P0301, P0420, P0171
	case "transmission":
		e.dtcs = []dtc{{[3]byte{0x07, 0x00, 0x00}, 0x09}, {[3]byte{0x07, 0x15, 0x00}, 0x00}} // P0700, P0715
	case "body":
		e.dtcs = []dtc{{[3]byte{0x92, 0x34, 0x00}, 0x28}, {[3]byte{0x90, 0x01, 0x00}, 0x00}} // B1234, B1001
	}
	return e
}

// VIN returns the vehicle identification number.
func (v *Vehicle) VIN() string { return v.vin }

// ECUs returns the bus layout of the vehicle.
func (v *Vehicle) ECUs() []ECUConfig { return slices.Clone(v.opts.ECUs) }

// ResponseID returns the CAN id on which the ECU listening on requestID
// answers, and false if no ECU listens there.
func (v *Vehicle) ResponseID(requestID uint32) (uint32, bool) {
	e, ok := v.ecus[requestID] // the map is never written after NewVehicle
	if !ok {
		return 0, false
	}
	return e.cfg.ResponseID, true
}

// DiagnosticSession returns the active UDS session of the ECU listening on
// requestID at time now, and false if no ECU listens there.
func (v *Vehicle) DiagnosticSession(now time.Time, requestID uint32) (byte, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.ecus[requestID]
	if !ok {
		return 0, false
	}
	v.expireSession(e, now)
	return e.session, true
}

// Handle gives request req, sent at time now to CAN id requestID, to the ECU
// listening there. It returns the CAN id the ECU answers on and its replies
// (none when the positive response is suppressed), or ok=false when no ECU
// listens on requestID. req must not be empty.
func (v *Vehicle) Handle(now time.Time, requestID uint32, req []byte) (responseID uint32, replies []Reply, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.ecus[requestID]
	if !ok || len(req) == 0 {
		return 0, nil, false
	}
	v.expireSession(e, now)
	e.lastRequest = now
	return e.cfg.ResponseID, v.dispatch(e, req, now), true
}

// expireSession applies the S3 server timer: a non-default session falls
// back to the default session when no request arrived for SessionTimeout,
// which locks security access again.
func (v *Vehicle) expireSession(e *ecu, now time.Time) {
	if e.session != SessionDefault && now.Sub(e.lastRequest) > v.opts.SessionTimeout {
		e.session = SessionDefault
		e.resetVolatile()
	}
}

func one(payload ...byte) []Reply { return []Reply{{Payload: payload}} }

func negative(sid, nrc byte) []Reply { return one(sidNegativeResponse, sid, nrc) }

// suppressed reports whether the suppressPosRspMsgIndicationBit is set.
func suppressed(req []byte) bool { return len(req) > 1 && req[1]&0x80 != 0 }

func (v *Vehicle) dispatch(e *ecu, req []byte, now time.Time) []Reply {
	sid := req[0]
	var out []Reply
	switch sid {
	case sidSessionControl:
		out = e.sessionControl(req)
	case sidECUReset:
		out = e.reset(req)
	case sidClearDTC:
		out = e.clearDTC(req)
	case sidReadDTC:
		out = e.readDTC(req)
	case sidReadDataByID:
		out = e.readData(req)
	case sidSecurityAccess:
		out = e.securityAccess(req, now)
	case sidWriteDataByID:
		out = e.writeData(req)
	case sidIOControl:
		out = e.ioControl(req)
	case sidRoutineControl:
		out = v.routineControl(e, req)
	case sidTesterPresent:
		out = testerPresent(req)
	default:
		return negative(sid, NRCServiceNotSupported)
	}
	// Only 0x10, 0x11 and 0x3E honour the suppress bit here; for 0x22 and 0x2E
	// the second byte is part of a data identifier.
	hasSuppress := sid == sidSessionControl || sid == sidECUReset || sid == sidTesterPresent
	if hasSuppress && suppressed(req) && len(out) == 1 && out[0].Payload[0] == sid+0x40 {
		return nil
	}
	return out
}

func (e *ecu) sessionControl(req []byte) []Reply {
	if len(req) != 2 {
		return negative(req[0], NRCIncorrectMessageLength)
	}
	sub := req[1] & 0x7F
	switch sub {
	case SessionDefault, SessionProgramming, SessionExtended:
		e.session = sub
		e.resetVolatile()
		// P2 = 50 ms, P2* = 5000 ms (in units of 10 ms).
		return one(0x50, sub, 0x00, 0x32, 0x01, 0xF4)
	default:
		return negative(req[0], NRCSubFunctionNotSupported)
	}
}

func (e *ecu) reset(req []byte) []Reply {
	if len(req) != 2 {
		return negative(req[0], NRCIncorrectMessageLength)
	}
	sub := req[1] & 0x7F
	switch sub {
	case 0x01, 0x02, 0x03: // hard, key off/on, soft
		e.session = SessionDefault
		e.resetVolatile()
		return one(0x51, sub)
	default:
		return negative(req[0], NRCSubFunctionNotSupported)
	}
}

func (e *ecu) readDTC(req []byte) []Reply {
	if len(req) < 2 {
		return negative(req[0], NRCIncorrectMessageLength)
	}
	const availability = 0xFF
	switch req[1] {
	case 0x01: // reportNumberOfDTCByStatusMask
		if len(req) != 3 {
			return negative(req[0], NRCIncorrectMessageLength)
		}
		n := 0
		for _, d := range e.dtcs {
			if d.status&req[2] != 0 {
				n++
			}
		}
		return one(0x59, 0x01, availability, 0x01, byte(n>>8), byte(n))
	case 0x02: // reportDTCByStatusMask
		if len(req) != 3 {
			return negative(req[0], NRCIncorrectMessageLength)
		}
		resp := []byte{0x59, 0x02, availability}
		for _, d := range e.dtcs {
			if d.status&req[2] != 0 {
				resp = append(resp, d.code[0], d.code[1], d.code[2], d.status)
			}
		}
		return one(resp...)
	case 0x0A: // reportSupportedDTC
		if len(req) != 2 {
			return negative(req[0], NRCIncorrectMessageLength)
		}
		resp := []byte{0x59, 0x0A, availability}
		for _, d := range e.dtcs {
			resp = append(resp, d.code[0], d.code[1], d.code[2], d.status)
		}
		return one(resp...)
	default:
		return negative(req[0], NRCSubFunctionNotSupported)
	}
}

// clearDTC clears the DTCs of a group (FFFFFF: all) or one DTC. As in ISO
// 14229-1, a cleared DTC stays supported with the status bits
// testNotCompletedSinceLastClear and testNotCompletedThisOperationCycle set
// (0x50).
func (e *ecu) clearDTC(req []byte) []Reply {
	if len(req) != 4 {
		return negative(req[0], NRCIncorrectMessageLength)
	}
	const clearedStatus = 0x50
	group := [3]byte{req[1], req[2], req[3]}
	all := group == [3]byte{0xFF, 0xFF, 0xFF}
	found := false
	for i := range e.dtcs {
		if all || e.dtcs[i].code == group {
			found = true
			if e.dtcs[i].status != 0 {
				e.dtcs[i].status = clearedStatus
			}
		}
	}
	if !found {
		return negative(req[0], NRCRequestOutOfRange)
	}
	return one(0x54)
}

// securityAccess serves level 01 (requestSeed) and 02 (sendKey) in the
// extended and programming sessions; see DemoSecurityKey.
func (e *ecu) securityAccess(req []byte, now time.Time) []Reply {
	if e.session == SessionDefault {
		return negative(req[0], NRCServiceNotSupportedInActiveSession)
	}
	if len(req) < 2 {
		return negative(req[0], NRCIncorrectMessageLength)
	}
	switch req[1] {
	case 0x01: // requestSeed
		if len(req) != 2 {
			return negative(req[0], NRCIncorrectMessageLength)
		}
		if now.Before(e.lockedUntil) {
			return negative(req[0], NRCRequiredTimeDelayNotExpired)
		}
		if e.unlocked {
			return one(0x67, 0x01, 0, 0, 0, 0) // already unlocked: a zero seed
		}
		e.seeds++
		x := (e.cfg.RequestID*2654435761 + e.seeds*40503) | 1 // never zero
		e.seed = binary.BigEndian.AppendUint32(nil, x)
		return one(append([]byte{0x67, 0x01}, e.seed...)...)
	case 0x02: // sendKey
		if len(req) != 6 {
			return negative(req[0], NRCIncorrectMessageLength)
		}
		if e.seed == nil {
			return negative(req[0], NRCRequestSequenceError)
		}
		want := DemoSecurityKey(e.seed)
		e.seed = nil
		if string(req[2:]) != string(want) {
			e.failedKeys++
			if e.failedKeys >= SecurityMaxAttempts {
				e.failedKeys = 0
				e.lockedUntil = now.Add(SecurityDelay)
				return negative(req[0], NRCExceededNumberOfAttempts)
			}
			return negative(req[0], NRCInvalidKey)
		}
		e.unlocked, e.failedKeys = true, 0
		return one(0x67, 0x02)
	default:
		return negative(req[0], NRCSubFunctionNotSupported)
	}
}

// ioControl serves InputOutputControlByIdentifier on DIDFanDuty in the
// extended session with security access: 00 returnControlToECU, 01
// resetToDefault (0 %), 02 freezeCurrentState, 03 shortTermAdjustment
// (0-100 %). The answer echoes the control parameter and gives the duty.
func (e *ecu) ioControl(req []byte) []Reply {
	if e.session != SessionExtended {
		return negative(req[0], NRCServiceNotSupportedInActiveSession)
	}
	if len(req) < 4 {
		return negative(req[0], NRCIncorrectMessageLength)
	}
	id := uint16(req[1])<<8 | uint16(req[2])
	if id != DIDFanDuty {
		return negative(req[0], NRCRequestOutOfRange)
	}
	ctrl := req[3]
	wantLen := 4
	if ctrl == 0x03 {
		wantLen = 5
	}
	if ctrl > 0x03 {
		return negative(req[0], NRCRequestOutOfRange)
	}
	if len(req) != wantLen {
		return negative(req[0], NRCIncorrectMessageLength)
	}
	if !e.unlocked {
		return negative(req[0], NRCSecurityAccessDenied)
	}
	switch ctrl {
	case 0x00:
		e.fanOverride, e.fanDuty = false, fanDutyECU
	case 0x01:
		e.fanOverride, e.fanDuty = true, 0
	case 0x02:
		e.fanOverride = true
	case 0x03:
		if req[4] > 100 {
			return negative(req[0], NRCRequestOutOfRange)
		}
		e.fanOverride, e.fanDuty = true, req[4]
	}
	return one(0x6F, req[1], req[2], ctrl, e.fanDuty)
}

func (e *ecu) readData(req []byte) []Reply {
	if len(req) < 3 || (len(req)-1)%2 != 0 {
		return negative(req[0], NRCIncorrectMessageLength)
	}
	resp := []byte{0x62}
	for i := 1; i < len(req); i += 2 {
		id := uint16(req[i])<<8 | uint16(req[i+1])
		var data []byte
		if id == DIDActiveSess {
			data = []byte{e.session}
		} else if id == DIDFanDuty {
			data = []byte{e.fanDuty}
		} else if d, ok := e.dids[id]; ok {
			data = d
		} else {
			return negative(req[0], NRCRequestOutOfRange)
		}
		if len(resp)+2+len(data) > MaxPayload {
			return negative(req[0], NRCResponseTooLong)
		}
		resp = append(resp, req[i], req[i+1])
		resp = append(resp, data...)
	}
	return one(resp...)
}

func (e *ecu) writeData(req []byte) []Reply {
	if e.session != SessionExtended {
		return negative(req[0], NRCServiceNotSupportedInActiveSession)
	}
	if len(req) < 4 {
		return negative(req[0], NRCIncorrectMessageLength)
	}
	id := uint16(req[1])<<8 | uint16(req[2])
	cur, ok := e.dids[id]
	if !ok || !e.writable[id] {
		return negative(req[0], NRCRequestOutOfRange)
	}
	if len(req)-3 != len(cur) {
		return negative(req[0], NRCIncorrectMessageLength)
	}
	if e.secured[id] && !e.unlocked {
		return negative(req[0], NRCSecurityAccessDenied)
	}
	e.dids[id] = slices.Clone(req[3:])
	return one(0x6E, req[1], req[2])
}

func (v *Vehicle) routineControl(e *ecu, req []byte) []Reply {
	if len(req) < 4 {
		return negative(req[0], NRCIncorrectMessageLength)
	}
	sub := req[1] & 0x7F
	if sub < 0x01 || sub > 0x03 {
		return negative(req[0], NRCSubFunctionNotSupported)
	}
	id := uint16(req[2])<<8 | uint16(req[3])
	switch id {
	case RoutineErase:
	case RoutineSelfTest:
		return e.selfTestControl(req, sub)
	default:
		return negative(req[0], NRCRequestOutOfRange)
	}
	final := Reply{Payload: []byte{0x71, sub, req[2], req[3], 0x00}}
	if sub != 0x01 {
		return []Reply{final}
	}
	out := make([]Reply, 0, v.opts.PendingCount+1)
	for i := range v.opts.PendingCount {
		r := Reply{Payload: []byte{sidNegativeResponse, req[0], NRCResponsePending}}
		if i > 0 {
			r.After = v.opts.PendingSpacing
		}
		out = append(out, r)
	}
	final.After = v.opts.PendingSpacing
	return append(out, final)
}

// selfTestControl serves RoutineSelfTest: start (01) answers 71 01 02 03
// 00 and leaves it running, stop (02) stops a running test, results (03)
// answer 71 03 02 03 00 00 (passed) once it was started. Outside the
// extended session the routine is not supported (requestOutOfRange, as ISO
// 14229-1 says for a routine not supported in the active session); without
// security access it is securityAccessDenied.
func (e *ecu) selfTestControl(req []byte, sub byte) []Reply {
	if e.session != SessionExtended {
		return negative(req[0], NRCRequestOutOfRange)
	}
	if len(req) != 4 {
		return negative(req[0], NRCIncorrectMessageLength)
	}
	if !e.unlocked {
		return negative(req[0], NRCSecurityAccessDenied)
	}
	switch sub {
	case 0x01:
		e.selfTest = routineRunning
		return one(0x71, 0x01, req[2], req[3], 0x00)
	case 0x02:
		if e.selfTest != routineRunning {
			return negative(req[0], NRCRequestSequenceError)
		}
		e.selfTest = routineStopped
		return one(0x71, 0x02, req[2], req[3], 0x00)
	default:
		if e.selfTest == routineIdle {
			return negative(req[0], NRCRequestSequenceError)
		}
		return one(0x71, 0x03, req[2], req[3], 0x00, 0x00)
	}
}

func testerPresent(req []byte) []Reply {
	if len(req) != 2 {
		return negative(req[0], NRCIncorrectMessageLength)
	}
	if req[1]&0x7F != 0x00 {
		return negative(req[0], NRCSubFunctionNotSupported)
	}
	return one(0x7E, 0x00)
}
