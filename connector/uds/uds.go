// Package uds holds the transport-independent rules of Unified Diagnostic
// Services (ISO 14229-1) that a tester needs to pair a request with its
// response: service identifiers, negative response codes and their names,
// response matching and the read-only services that are safe to repeat.
//
// Everything here works on raw bytes and allocates nothing, so the openOBD
// client and the orchestrator's relay can call it for every message.
package uds

// SID is a UDS service identifier, the first byte of a request.
type SID byte

// Service identifiers of ISO 14229-1, plus the KWP2000 service 0x1A that
// many ECUs still answer.
const (
	DiagnosticSessionControl        SID = 0x10
	ECUReset                        SID = 0x11
	ClearDiagnosticInformation      SID = 0x14
	ReadDTCInformation              SID = 0x19
	ReadECUIdentification           SID = 0x1A // KWP2000
	ReadDataByIdentifier            SID = 0x22
	ReadMemoryByAddress             SID = 0x23
	ReadScalingDataByIdentifier     SID = 0x24
	SecurityAccess                  SID = 0x27
	CommunicationControl            SID = 0x28
	Authentication                  SID = 0x29
	ReadDataByPeriodicIdentifier    SID = 0x2A
	DynamicallyDefineDataIdentifier SID = 0x2C
	WriteDataByIdentifier           SID = 0x2E
	InputOutputControlByIdentifier  SID = 0x2F
	RoutineControl                  SID = 0x31
	RequestDownload                 SID = 0x34
	RequestUpload                   SID = 0x35
	TransferData                    SID = 0x36
	RequestTransferExit             SID = 0x37
	RequestFileTransfer             SID = 0x38
	WriteMemoryByAddress            SID = 0x3D
	TesterPresent                   SID = 0x3E
	NegativeResponse                SID = 0x7F // first byte of every negative response
	AccessTimingParameter           SID = 0x83
	SecuredDataTransmission         SID = 0x84
	ControlDTCSetting               SID = 0x85
	ResponseOnEvent                 SID = 0x86
	LinkControl                     SID = 0x87
)

// PositiveResponseOffset is added to a request's SID to form the first byte
// of its positive response (0x22 is answered by 0x62).
const PositiveResponseOffset = 0x40

// SuppressPositiveResponse is the bit of a sub-function byte that asks the
// ECU not to send a positive response (tester present 3E 80).
const SuppressPositiveResponse = 0x80

// String returns the service name, or "SID 0xNN" when it is not in the table.
func (s SID) String() string {
	switch s {
	case DiagnosticSessionControl:
		return "DiagnosticSessionControl"
	case ECUReset:
		return "ECUReset"
	case ClearDiagnosticInformation:
		return "ClearDiagnosticInformation"
	case ReadDTCInformation:
		return "ReadDTCInformation"
	case ReadECUIdentification:
		return "ReadECUIdentification"
	case ReadDataByIdentifier:
		return "ReadDataByIdentifier"
	case ReadMemoryByAddress:
		return "ReadMemoryByAddress"
	case ReadScalingDataByIdentifier:
		return "ReadScalingDataByIdentifier"
	case SecurityAccess:
		return "SecurityAccess"
	case CommunicationControl:
		return "CommunicationControl"
	case Authentication:
		return "Authentication"
	case ReadDataByPeriodicIdentifier:
		return "ReadDataByPeriodicIdentifier"
	case DynamicallyDefineDataIdentifier:
		return "DynamicallyDefineDataIdentifier"
	case WriteDataByIdentifier:
		return "WriteDataByIdentifier"
	case InputOutputControlByIdentifier:
		return "InputOutputControlByIdentifier"
	case RoutineControl:
		return "RoutineControl"
	case RequestDownload:
		return "RequestDownload"
	case RequestUpload:
		return "RequestUpload"
	case TransferData:
		return "TransferData"
	case RequestTransferExit:
		return "RequestTransferExit"
	case RequestFileTransfer:
		return "RequestFileTransfer"
	case WriteMemoryByAddress:
		return "WriteMemoryByAddress"
	case TesterPresent:
		return "TesterPresent"
	case NegativeResponse:
		return "NegativeResponse"
	case AccessTimingParameter:
		return "AccessTimingParameter"
	case SecuredDataTransmission:
		return "SecuredDataTransmission"
	case ControlDTCSetting:
		return "ControlDTCSetting"
	case ResponseOnEvent:
		return "ResponseOnEvent"
	case LinkControl:
		return "LinkControl"
	}
	return "SID 0x" + hexByte(byte(s))
}

// IsIdempotent reports whether a request of service s only reads, so that
// sending it twice has the same effect as sending it once: such requests may
// be re-sent after a broken stream. The read-only services are
// ReadDTCInformation, ReadECUIdentification, ReadDataByIdentifier,
// ReadMemoryByAddress, ReadScalingDataByIdentifier and TesterPresent.
func IsIdempotent(s SID) bool {
	switch s {
	case ReadDTCInformation, ReadECUIdentification, ReadDataByIdentifier,
		ReadMemoryByAddress, ReadScalingDataByIdentifier, TesterPresent:
		return true
	}
	return false
}

// NRC is a negative response code, the third byte of 7F <SID> <NRC>.
type NRC byte

// Negative response codes of ISO 14229-1.
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
)

// String returns the code's name as written in ISO 14229-1, or "NRC 0xNN"
// when it is not in the table.
func (n NRC) String() string {
	switch n {
	case GeneralReject:
		return "generalReject"
	case ServiceNotSupported:
		return "serviceNotSupported"
	case SubFunctionNotSupported:
		return "subFunctionNotSupported"
	case IncorrectMessageLengthOrInvalidFormat:
		return "incorrectMessageLengthOrInvalidFormat"
	case ResponseTooLong:
		return "responseTooLong"
	case BusyRepeatRequest:
		return "busyRepeatRequest"
	case ConditionsNotCorrect:
		return "conditionsNotCorrect"
	case RequestSequenceError:
		return "requestSequenceError"
	case NoResponseFromSubnetComponent:
		return "noResponseFromSubnetComponent"
	case FailurePreventsExecutionOfRequestedAction:
		return "failurePreventsExecutionOfRequestedAction"
	case RequestOutOfRange:
		return "requestOutOfRange"
	case SecurityAccessDenied:
		return "securityAccessDenied"
	case InvalidKey:
		return "invalidKey"
	case ExceededNumberOfAttempts:
		return "exceedNumberOfAttempts"
	case RequiredTimeDelayNotExpired:
		return "requiredTimeDelayNotExpired"
	case UploadDownloadNotAccepted:
		return "uploadDownloadNotAccepted"
	case TransferDataSuspended:
		return "transferDataSuspended"
	case GeneralProgrammingFailure:
		return "generalProgrammingFailure"
	case WrongBlockSequenceCounter:
		return "wrongBlockSequenceCounter"
	case ResponsePending:
		return "requestCorrectlyReceivedResponsePending"
	case SubFunctionNotSupportedInActiveSession:
		return "subFunctionNotSupportedInActiveSession"
	case ServiceNotSupportedInActiveSession:
		return "serviceNotSupportedInActiveSession"
	}
	return "NRC 0x" + hexByte(byte(n))
}

// Outcome says how a response relates to a request.
type Outcome uint8

// The outcomes of Match.
const (
	// Stray: the response does not answer the request (another service, an
	// empty payload or a malformed negative response).
	Stray Outcome = iota
	// Positive: the response starts with the request's SID + 0x40.
	Positive
	// Negative: the response is exactly 7F <SID> <NRC>.
	Negative
)

// String returns "stray", "positive" or "negative".
func (o Outcome) String() string {
	switch o {
	case Positive:
		return "positive"
	case Negative:
		return "negative"
	}
	return "stray"
}

// Verdict is the result of Match. NRC is set only when Outcome is Negative.
type Verdict struct {
	Outcome Outcome
	NRC     NRC
}

// Match classifies response against request. A response answers a request
// when it starts with the request's SID + 0x40 and echoes what ISO 14229-1
// says that service echoes (positive; see echoes), or when it is exactly the
// three bytes 7F <SID> <NRC> (negative). Everything else,
// including a 7F response of another length, is a stray. An empty request
// or response, or a request whose first byte is itself a response SID, never
// matches.
func Match(request, response []byte) Verdict {
	if len(request) == 0 || len(response) == 0 {
		return Verdict{}
	}
	sid := request[0]
	if sid&PositiveResponseOffset != 0 { // 0x40-0x7F and 0xC0-0xFF are response SIDs
		return Verdict{}
	}
	switch {
	case response[0] == sid+PositiveResponseOffset:
		if !echoes(request, response) {
			return Verdict{}
		}
		return Verdict{Outcome: Positive}
	case response[0] == byte(NegativeResponse) && len(response) == 3 && response[1] == sid:
		return Verdict{Outcome: Negative, NRC: NRC(response[2])}
	}
	return Verdict{}
}

// echoes reports whether a positive response repeats the request parameters
// its service echoes, so that a late answer to an earlier request of the
// same service is not taken for the answer to this one: the data identifier
// of 0x22 (first one) and 0x2E, the sub-function and routine identifier of
// 0x31, the sub-function of 0x10, 0x11, 0x19, 0x27, 0x28, 0x3E and 0x85
// (without its suppress bit; a bare SID is accepted there). Other services, and requests too short to
// carry the parameter, match on the service id alone.
func echoes(request, response []byte) bool {
	n := 0
	switch SID(request[0]) {
	case ReadDataByIdentifier, WriteDataByIdentifier:
		n = 2
	case RoutineControl:
		n = 3
	case DiagnosticSessionControl, ECUReset, ReadDTCInformation, SecurityAccess,
		CommunicationControl, TesterPresent, ControlDTCSetting:
		if len(request) < 2 {
			return true
		}
		return len(response) < 2 || response[1]&0x7F == request[1]&0x7F
	default:
		return true
	}
	if len(request) < 1+n {
		return true
	}
	if len(response) < 1+n {
		return false
	}
	for i := 1; i <= n; i++ {
		if response[i] != request[i] {
			return false
		}
	}
	return true
}

// NegativeResponseError is a negative response (7F <SID> <NRC>) to a request.
type NegativeResponseError struct {
	SID SID
	NRC NRC
}

// Error describes the response by service and code names, e.g.
// "uds: ReadDataByIdentifier (0x22): requestOutOfRange (0x31)".
func (e *NegativeResponseError) Error() string {
	return "uds: " + e.SID.String() + " (0x" + hexByte(byte(e.SID)) + "): " +
		e.NRC.String() + " (0x" + hexByte(byte(e.NRC)) + ")"
}

// Is reports whether target is a *NegativeResponseError with the same NRC and
// either the same SID or a zero SID, so errors.Is(err,
// &uds.NegativeResponseError{NRC: uds.RequestOutOfRange}) matches any service.
func (e *NegativeResponseError) Is(target error) bool {
	t, ok := target.(*NegativeResponseError)
	return ok && t.NRC == e.NRC && (t.SID == 0 || t.SID == e.SID)
}

const hexDigits = "0123456789ABCDEF"

// hexByte returns b as two uppercase hexadecimal digits.
func hexByte(b byte) string {
	return string([]byte{hexDigits[b>>4], hexDigits[b&0x0F]})
}
