"""Small UDS (ISO 14229-1) helpers for runners: response matching, negative
response codes with their ISO names, and DTC decoding.

Pure Python, no dependencies; the Go SDK's package sdk/uds has the same
tables.
"""

NEGATIVE_RESPONSE = 0x7F
POSITIVE_OFFSET = 0x40

NRC_NAMES = {
    0x10: "generalReject",
    0x11: "serviceNotSupported",
    0x12: "subFunctionNotSupported",
    0x13: "incorrectMessageLengthOrInvalidFormat",
    0x14: "responseTooLong",
    0x21: "busyRepeatRequest",
    0x22: "conditionsNotCorrect",
    0x24: "requestSequenceError",
    0x25: "noResponseFromSubnetComponent",
    0x26: "failurePreventsExecutionOfRequestedAction",
    0x31: "requestOutOfRange",
    0x33: "securityAccessDenied",
    0x34: "authenticationRequired",
    0x35: "invalidKey",
    0x36: "exceedNumberOfAttempts",
    0x37: "requiredTimeDelayNotExpired",
    0x70: "uploadDownloadNotAccepted",
    0x71: "transferDataSuspended",
    0x72: "generalProgrammingFailure",
    0x73: "wrongBlockSequenceCounter",
    0x78: "requestCorrectlyReceivedResponsePending",
    0x7E: "subFunctionNotSupportedInActiveSession",
    0x7F: "serviceNotSupportedInActiveSession",
}

STATUS_BITS = [
    "testFailed",
    "testFailedThisOperationCycle",
    "pendingDTC",
    "confirmedDTC",
    "testNotCompletedSinceLastClear",
    "testFailedSinceLastClear",
    "testNotCompletedThisOperationCycle",
    "warningIndicatorRequested",
]


def nrc_name(nrc):
    """The ISO 14229-1 name of a negative response code."""
    return NRC_NAMES.get(nrc, "NRC 0x%02X" % nrc)


class NegativeResponse(Exception):
    """A negative response 7F <sid> <nrc>."""

    def __init__(self, sid, nrc):
        super().__init__("0x%02X: %s (0x%02X)" % (sid, nrc_name(nrc), nrc))
        self.sid = sid
        self.nrc = nrc


def match(request, response):
    """Classify response against request: "positive" when it starts with the
    request's SID + 0x40, "negative" when it is exactly 7F <SID> <NRC>,
    otherwise "stray" (an answer to something else)."""
    if not request or not response:
        return "stray"
    sid = request[0]
    if response[0] == sid + POSITIVE_OFFSET:
        return "positive"
    if len(response) == 3 and response[0] == NEGATIVE_RESPONSE and response[1] == sid:
        return "negative"
    return "stray"


def check(request, response):
    """Return response if it answers request positively; raise
    NegativeResponse for a negative answer and ValueError for a stray."""
    kind = match(request, response)
    if kind == "negative":
        raise NegativeResponse(response[1], response[2])
    if kind == "stray":
        raise ValueError("response %s does not answer request %s" % (response.hex(), request.hex()))
    return response


def dtc_name(code):
    """SAE J2012 form of a 3-byte DTC's first two bytes, e.g. "P0301"."""
    hi, lo = (code >> 16) & 0xFF, (code >> 8) & 0xFF
    return "%s%X%X%02X" % ("PCBU"[hi >> 6], (hi >> 4) & 0x3, hi & 0xF, lo)


def status_names(status):
    """Names of the status bits set in a DTC status byte."""
    return [name for bit, name in enumerate(STATUS_BITS) if status & (1 << bit)]


def parse_dtcs(response, sub=0x02):
    """Decode 59 <sub> <availability> followed by 4-byte DTC records into a
    list of (code, status) tuples."""
    if len(response) < 3 or response[0] != 0x59 or response[1] != sub or (len(response) - 3) % 4:
        raise ValueError("malformed ReadDTCInformation answer %s" % response.hex())
    recs = response[3:]
    return [(int.from_bytes(recs[i:i + 3], "big"), recs[i + 3]) for i in range(0, len(recs), 4)]
