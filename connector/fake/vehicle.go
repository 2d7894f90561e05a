package fake

import (
	"fmt"
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
	sidReadDTC          = 0x19
	sidReadDataByID     = 0x22
	sidWriteDataByID    = 0x2E
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
	NRCRequestOutOfRange                  = 0x31
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
)

// RoutineErase is the routine identifier that answers "response pending"
// several times before its positive response.
const RoutineErase uint16 = 0xFF00

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
	dtcs        []dtc
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
		},
		writable: map[uint16]bool{DIDCoding: true},
	}
	switch c.Name {
	case "engine":
		e.dtcs = []dtc{{[3]byte{0x03, 0x01, 0x00}, 0x2F}, {[3]byte{0x04, 0x20, 0x00}, 0x08}} // P0301, P0420
	case "transmission":
		e.dtcs = []dtc{{[3]byte{0x07, 0x00, 0x00}, 0x09}} // P0700
	case "body":
		e.dtcs = []dtc{{[3]byte{0x92, 0x34, 0x00}, 0x28}} // B1234
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
	return e.cfg.ResponseID, v.dispatch(e, req), true
}

// expireSession applies the S3 server timer: a non-default session falls
// back to the default session when no request arrived for SessionTimeout.
func (v *Vehicle) expireSession(e *ecu, now time.Time) {
	if e.session != SessionDefault && now.Sub(e.lastRequest) > v.opts.SessionTimeout {
		e.session = SessionDefault
	}
}

func one(payload ...byte) []Reply { return []Reply{{Payload: payload}} }

func negative(sid, nrc byte) []Reply { return one(sidNegativeResponse, sid, nrc) }

// suppressed reports whether the suppressPosRspMsgIndicationBit is set.
func suppressed(req []byte) bool { return len(req) > 1 && req[1]&0x80 != 0 }

func (v *Vehicle) dispatch(e *ecu, req []byte) []Reply {
	sid := req[0]
	var out []Reply
	switch sid {
	case sidSessionControl:
		out = e.sessionControl(req)
	case sidECUReset:
		out = e.reset(req)
	case sidReadDTC:
		out = e.readDTC(req)
	case sidReadDataByID:
		out = e.readData(req)
	case sidWriteDataByID:
		out = e.writeData(req)
	case sidRoutineControl:
		out = v.routineControl(req)
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
	default:
		return negative(req[0], NRCSubFunctionNotSupported)
	}
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
	e.dids[id] = slices.Clone(req[3:])
	return one(0x6E, req[1], req[2])
}

func (v *Vehicle) routineControl(req []byte) []Reply {
	if len(req) < 4 {
		return negative(req[0], NRCIncorrectMessageLength)
	}
	sub := req[1] & 0x7F
	if sub < 0x01 || sub > 0x03 {
		return negative(req[0], NRCSubFunctionNotSupported)
	}
	id := uint16(req[2])<<8 | uint16(req[3])
	if id != RoutineErase {
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

func testerPresent(req []byte) []Reply {
	if len(req) != 2 {
		return negative(req[0], NRCIncorrectMessageLength)
	}
	if req[1]&0x7F != 0x00 {
		return negative(req[0], NRCSubFunctionNotSupported)
	}
	return one(0x7E, 0x00)
}
