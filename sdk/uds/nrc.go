// Package uds holds what a runner needs to speak Unified Diagnostic Services
// (ISO 14229-1) over the orchestrator: service identifiers, negative response
// codes with their ISO names, the typed negative-response error, and the
// encoding and decoding of the services the SDK's helpers use (DTCs and their
// status bits, data identifiers, routines, security access, session timing).
//
// Everything here works on bytes and has no dependencies, so it can be used
// with any transport.
package uds

import "strconv"

// SID is a UDS service identifier, the first byte of a request.
type SID byte

// Service identifiers of ISO 14229-1.
const (
	DiagnosticSessionControl       SID = 0x10
	ECUReset                       SID = 0x11
	ClearDiagnosticInformation     SID = 0x14
	ReadDTCInformation             SID = 0x19
	ReadDataByIdentifier           SID = 0x22
	ReadMemoryByAddress            SID = 0x23
	SecurityAccess                 SID = 0x27
	CommunicationControl           SID = 0x28
	WriteDataByIdentifier          SID = 0x2E
	InputOutputControlByIdentifier SID = 0x2F
	RoutineControl                 SID = 0x31
	RequestDownload                SID = 0x34
	RequestUpload                  SID = 0x35
	TransferData                   SID = 0x36
	RequestTransferExit            SID = 0x37
	WriteMemoryByAddress           SID = 0x3D
	TesterPresent                  SID = 0x3E
	NegativeResponse               SID = 0x7F // first byte of every negative response
	ControlDTCSetting              SID = 0x85
)

// PositiveResponseOffset is added to a request's SID to form the first byte
// of its positive response (0x22 is answered by 0x62).
const PositiveResponseOffset = 0x40

var sidNames = map[SID]string{
	DiagnosticSessionControl:       "DiagnosticSessionControl",
	ECUReset:                       "ECUReset",
	ClearDiagnosticInformation:     "ClearDiagnosticInformation",
	ReadDTCInformation:             "ReadDTCInformation",
	ReadDataByIdentifier:           "ReadDataByIdentifier",
	ReadMemoryByAddress:            "ReadMemoryByAddress",
	SecurityAccess:                 "SecurityAccess",
	CommunicationControl:           "CommunicationControl",
	WriteDataByIdentifier:          "WriteDataByIdentifier",
	InputOutputControlByIdentifier: "InputOutputControlByIdentifier",
	RoutineControl:                 "RoutineControl",
	RequestDownload:                "RequestDownload",
	RequestUpload:                  "RequestUpload",
	TransferData:                   "TransferData",
	RequestTransferExit:            "RequestTransferExit",
	WriteMemoryByAddress:           "WriteMemoryByAddress",
	TesterPresent:                  "TesterPresent",
	NegativeResponse:               "NegativeResponse",
	ControlDTCSetting:              "ControlDTCSetting",
}

// String returns the service name, or "SID 0xNN" when it is not in the table.
func (s SID) String() string {
	if n, ok := sidNames[s]; ok {
		return n
	}
	return "SID 0x" + hex2(byte(s))
}

// NRC is a negative response code, the third byte of 7F <SID> <NRC>.
type NRC byte

// Negative response codes of ISO 14229-1 (annex A.1).
const (
	GeneralReject                             NRC = 0x10
	ServiceNotSupported                       NRC = 0x11
	SubFunctionNotSupported                   NRC = 0x12
	IncorrectMessageLengthOrInvalidFormat     NRC = 0x13
	ResponseTooLong                           NRC = 0x14
	BusyRepeatRequest                         NRC = 0x21
	ConditionsNotCorrect                      NRC = 0x22
	RequestSequenceError                      NRC = 0x24
	NoResponseFromSubnetComponent             NRC = 0x25
	FailurePreventsExecutionOfRequestedAction NRC = 0x26
	RequestOutOfRange                         NRC = 0x31
	SecurityAccessDenied                      NRC = 0x33
	AuthenticationRequired                    NRC = 0x34
	InvalidKey                                NRC = 0x35
	ExceededNumberOfAttempts                  NRC = 0x36
	RequiredTimeDelayNotExpired               NRC = 0x37
	UploadDownloadNotAccepted                 NRC = 0x70
	TransferDataSuspended                     NRC = 0x71
	GeneralProgrammingFailure                 NRC = 0x72
	WrongBlockSequenceCounter                 NRC = 0x73
	ResponsePending                           NRC = 0x78 // requestCorrectlyReceived-ResponsePending
	SubFunctionNotSupportedInActiveSession    NRC = 0x7E
	ServiceNotSupportedInActiveSession        NRC = 0x7F
	RPMTooHigh                                NRC = 0x81
	RPMTooLow                                 NRC = 0x82
	EngineIsRunning                           NRC = 0x83
	EngineIsNotRunning                        NRC = 0x84
	EngineRunTimeTooLow                       NRC = 0x85
	TemperatureTooHigh                        NRC = 0x86
	TemperatureTooLow                         NRC = 0x87
	VehicleSpeedTooHigh                       NRC = 0x88
	VehicleSpeedTooLow                        NRC = 0x89
	ThrottlePedalTooHigh                      NRC = 0x8A
	ThrottlePedalTooLow                       NRC = 0x8B
	TransmissionRangeNotInNeutral             NRC = 0x8C
	TransmissionRangeNotInGear                NRC = 0x8D
	BrakeSwitchNotClosed                      NRC = 0x8F
	ShifterLeverNotInPark                     NRC = 0x90
	TorqueConverterClutchLocked               NRC = 0x91
	VoltageTooHigh                            NRC = 0x92
	VoltageTooLow                             NRC = 0x93
)

var nrcNames = map[NRC]string{
	GeneralReject:                             "generalReject",
	ServiceNotSupported:                       "serviceNotSupported",
	SubFunctionNotSupported:                   "subFunctionNotSupported",
	IncorrectMessageLengthOrInvalidFormat:     "incorrectMessageLengthOrInvalidFormat",
	ResponseTooLong:                           "responseTooLong",
	BusyRepeatRequest:                         "busyRepeatRequest",
	ConditionsNotCorrect:                      "conditionsNotCorrect",
	RequestSequenceError:                      "requestSequenceError",
	NoResponseFromSubnetComponent:             "noResponseFromSubnetComponent",
	FailurePreventsExecutionOfRequestedAction: "failurePreventsExecutionOfRequestedAction",
	RequestOutOfRange:                         "requestOutOfRange",
	SecurityAccessDenied:                      "securityAccessDenied",
	AuthenticationRequired:                    "authenticationRequired",
	InvalidKey:                                "invalidKey",
	ExceededNumberOfAttempts:                  "exceedNumberOfAttempts",
	RequiredTimeDelayNotExpired:               "requiredTimeDelayNotExpired",
	UploadDownloadNotAccepted:                 "uploadDownloadNotAccepted",
	TransferDataSuspended:                     "transferDataSuspended",
	GeneralProgrammingFailure:                 "generalProgrammingFailure",
	WrongBlockSequenceCounter:                 "wrongBlockSequenceCounter",
	ResponsePending:                           "requestCorrectlyReceivedResponsePending",
	SubFunctionNotSupportedInActiveSession:    "subFunctionNotSupportedInActiveSession",
	ServiceNotSupportedInActiveSession:        "serviceNotSupportedInActiveSession",
	RPMTooHigh:                                "rpmTooHigh",
	RPMTooLow:                                 "rpmTooLow",
	EngineIsRunning:                           "engineIsRunning",
	EngineIsNotRunning:                        "engineIsNotRunning",
	EngineRunTimeTooLow:                       "engineRunTimeTooLow",
	TemperatureTooHigh:                        "temperatureTooHigh",
	TemperatureTooLow:                         "temperatureTooLow",
	VehicleSpeedTooHigh:                       "vehicleSpeedTooHigh",
	VehicleSpeedTooLow:                        "vehicleSpeedTooLow",
	ThrottlePedalTooHigh:                      "throttle/PedalTooHigh",
	ThrottlePedalTooLow:                       "throttle/PedalTooLow",
	TransmissionRangeNotInNeutral:             "transmissionRangeNotInNeutral",
	TransmissionRangeNotInGear:                "transmissionRangeNotInGear",
	BrakeSwitchNotClosed:                      "brakeSwitch(es)NotClosed",
	ShifterLeverNotInPark:                     "shifterLeverNotInPark",
	TorqueConverterClutchLocked:               "torqueConverterClutchLocked",
	VoltageTooHigh:                            "voltageTooHigh",
	VoltageTooLow:                             "voltageTooLow",
}

// String returns the code's name as written in ISO 14229-1, or "NRC 0xNN"
// when it is not in the table.
func (n NRC) String() string {
	if s, ok := nrcNames[n]; ok {
		return s
	}
	return "NRC 0x" + hex2(byte(n))
}

// NegativeResponseError is a negative response (7F <SID> <NRC>) to a
// request.
type NegativeResponseError struct {
	SID SID
	NRC NRC
}

// Error describes the response by service and code names, e.g.
// "uds: ReadDataByIdentifier (0x22): requestOutOfRange (0x31)".
func (e *NegativeResponseError) Error() string {
	return "uds: " + e.SID.String() + " (0x" + hex2(byte(e.SID)) + "): " +
		e.NRC.String() + " (0x" + hex2(byte(e.NRC)) + ")"
}

// Is reports whether target is a *NegativeResponseError with the same NRC
// and either the same SID or a zero SID, so that
// errors.Is(err, &uds.NegativeResponseError{NRC: uds.SecurityAccessDenied})
// matches that code from any service.
func (e *NegativeResponseError) Is(target error) bool {
	t, ok := target.(*NegativeResponseError)
	return ok && t.NRC == e.NRC && (t.SID == 0 || t.SID == e.SID)
}

// ParseNegative returns the negative response in response to a request of
// service sid, or nil when response is not exactly 7F <sid> <NRC>.
func ParseNegative(sid SID, response []byte) *NegativeResponseError {
	if len(response) != 3 || response[0] != byte(NegativeResponse) || response[1] != byte(sid) {
		return nil
	}
	return &NegativeResponseError{SID: sid, NRC: NRC(response[2])}
}

// FormatError says that a positive response could not be decoded.
type FormatError struct {
	SID      SID
	Response []byte
	Reason   string
}

// Error names the service, the problem and the response bytes.
func (e *FormatError) Error() string {
	return "uds: " + e.SID.String() + ": malformed response " + hexBytes(e.Response) + ": " + e.Reason
}

func formatErr(sid SID, resp []byte, reason string) error {
	return &FormatError{SID: sid, Response: append([]byte(nil), resp...), Reason: reason}
}

const hexDigits = "0123456789ABCDEF"

func hex2(b byte) string { return string([]byte{hexDigits[b>>4], hexDigits[b&0x0F]}) }

func hexBytes(b []byte) string {
	out := make([]byte, 0, 3*len(b))
	for i, c := range b {
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, hexDigits[c>>4], hexDigits[c&0x0F])
	}
	if len(out) == 0 {
		return "(empty)"
	}
	return string(out)
}

// itoa is strconv.Itoa, kept short for the String methods.
func itoa(n int) string { return strconv.Itoa(n) }
