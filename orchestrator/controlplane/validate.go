package controlplane

import (
	"fmt"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/obdorch/obdorch/connector"
	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/session"
)

// Limits of the control plane's requests.
const (
	defaultPageSize   = 50
	maxPageSize       = 1000
	maxIDLen          = 128
	maxReasonLen      = 1024
	maxPayload        = 4095
	maxRequestTimeout = 2 * time.Minute
	minLeaseTTL       = 5 * time.Second
	maxLeaseTTL       = 10 * time.Minute
	maxBuses          = 4
	maxCANID          = 0x1FFFFFFF
)

// fieldError is an INVALID_ARGUMENT status naming the offending field, with
// a BadRequest detail a client can act on.
func fieldError(field, format string, args ...any) error {
	desc := fmt.Sprintf(format, args...)
	st := status.New(codes.InvalidArgument, fmt.Sprintf("invalid %s: %s", field, desc))
	if d, err := st.WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: desc}},
	}); err == nil {
		st = d
	}
	return st.Err()
}

func requireID(field, v string) error {
	switch {
	case v == "":
		return fieldError(field, "required")
	case len(v) > maxIDLen:
		return fieldError(field, "longer than %d characters", maxIDLen)
	}
	return nil
}

func optionalID(field, v string) error {
	if len(v) > maxIDLen {
		return fieldError(field, "longer than %d characters", maxIDLen)
	}
	return nil
}

func validatePage(size int32, token string) (orchestrator.Page, error) {
	switch {
	case size < 0 || size > maxPageSize:
		return orchestrator.Page{}, fieldError("page_size", "must be between 0 and %d, got %d", maxPageSize, size)
	case len(token) > 512:
		return orchestrator.Page{}, fieldError("page_token", "malformed")
	}
	if size == 0 {
		size = defaultPageSize
	}
	return orchestrator.Page{Size: int(size), Token: token}, nil
}

func validateDuration(field string, d interface {
	CheckValid() error
	AsDuration() time.Duration
}, lo, hi time.Duration) (time.Duration, error) {
	if err := d.CheckValid(); err != nil {
		return 0, fieldError(field, "%v", err)
	}
	v := d.AsDuration()
	if v < lo || v > hi {
		return 0, fieldError(field, "must be between %s and %s, got %s", lo, hi, v)
	}
	return v, nil
}

func validatePin(field string, pin uint32) error {
	if pin < 1 || pin > 16 {
		return fieldError(field, "OBD pin must be 1-16, got %d", pin)
	}
	return nil
}

// busesFromProto validates and converts a bus configuration: one to four
// buses, unique names, no pin used twice.
func busesFromProto(in []*orchestratorv1.Bus) ([]session.Bus, error) {
	if len(in) == 0 || len(in) > maxBuses {
		return nil, fieldError("buses", "need 1 to %d buses, got %d", maxBuses, len(in))
	}
	names := map[string]bool{}
	pins := map[uint32]string{}
	usePin := func(field string, pin uint32, bus string) error {
		if err := validatePin(field, pin); err != nil {
			return err
		}
		if other, ok := pins[pin]; ok {
			return fieldError(field, "pin %d is already used by bus %q", pin, other)
		}
		pins[pin] = bus
		return nil
	}
	out := make([]session.Bus, 0, len(in))
	for i, b := range in {
		prefix := fmt.Sprintf("buses[%d]", i)
		if err := requireID(prefix+".name", b.GetName()); err != nil {
			return nil, err
		}
		if names[b.GetName()] {
			return nil, fieldError(prefix+".name", "duplicate bus name %q", b.GetName())
		}
		names[b.GetName()] = true
		bus := session.Bus{Name: b.GetName()}
		switch d := b.GetDefinition().(type) {
		case *orchestratorv1.Bus_Can:
			c := d.Can
			if err := usePin(prefix+".can.pin_plus", c.GetPinPlus(), b.GetName()); err != nil {
				return nil, err
			}
			if err := usePin(prefix+".can.pin_minus", c.GetPinMinus(), b.GetName()); err != nil {
				return nil, err
			}
			if !connector.CANBitRateSupported(c.GetBitRate()) {
				return nil, fieldError(prefix+".can.bit_rate", "unsupported CAN bit rate %d", c.GetBitRate())
			}
			if _, ok := orchestratorv1.CanProtocol_name[int32(c.GetProtocol())]; !ok {
				return nil, fieldError(prefix+".can.protocol", "unknown protocol %d", c.GetProtocol())
			}
			bus.CAN = &session.CANBus{
				PinPlus: c.GetPinPlus(), PinMinus: c.GetPinMinus(), BitRate: c.GetBitRate(),
				Frames:   c.GetProtocol() == orchestratorv1.CanProtocol_CAN_PROTOCOL_FRAMES,
				LowSpeed: c.GetLowSpeedTransceiver(),
			}
		case *orchestratorv1.Bus_Kline:
			k := d.Kline
			if err := usePin(prefix+".kline.pin", k.GetPin(), b.GetName()); err != nil {
				return nil, err
			}
			if !connector.KLineBitRateSupported(k.GetBitRate()) {
				return nil, fieldError(prefix+".kline.bit_rate", "unsupported K-line bit rate %d", k.GetBitRate())
			}
			bus.KLine = &session.KLineBus{Pin: k.GetPin(), BitRate: k.GetBitRate(), FastInit: k.GetFastInit()}
		default:
			return nil, fieldError(prefix, "one of can or kline is required")
		}
		out = append(out, bus)
	}
	return out, nil
}

func channelFromProto(field string, c *orchestratorv1.Channel) (orchestrator.Channel, error) {
	if c == nil {
		return orchestrator.Channel{}, fieldError(field, "required")
	}
	if err := requireID(field+".bus_name", c.GetBusName()); err != nil {
		return orchestrator.Channel{}, err
	}
	for _, id := range []struct {
		name string
		v    uint32
	}{{"request_id", c.GetRequestId()}, {"response_id", c.GetResponseId()}} {
		if id.v == 0 || id.v > maxCANID {
			return orchestrator.Channel{}, fieldError(field+"."+id.name, "CAN id must be 1-0x1FFFFFFF, got %#x", id.v)
		}
	}
	if c.GetRequestId() == c.GetResponseId() {
		return orchestrator.Channel{}, fieldError(field+".response_id", "must differ from request_id")
	}
	for _, a := range []struct {
		name string
		v    *uint32
	}{{"extended_request_address", c.ExtendedRequestAddress}, {"extended_response_address", c.ExtendedResponseAddress}} {
		if a.v != nil && *a.v > 0xFF {
			return orchestrator.Channel{}, fieldError(field+"."+a.name, "must be one byte, got %#x", *a.v)
		}
	}
	if _, ok := orchestratorv1.Padding_name[int32(c.GetPadding())]; !ok {
		return orchestrator.Channel{}, fieldError(field+".padding", "unknown padding %d", c.GetPadding())
	}
	return orchestrator.Channel{
		BusName: c.GetBusName(), RequestID: c.GetRequestId(), ResponseID: c.GetResponseId(),
		ExtRequest: c.ExtendedRequestAddress, ExtResponse: c.ExtendedResponseAddress,
		Padding: int32(c.GetPadding()),
	}, nil
}

func requestFromProto(prefix string, payload []byte, timeout interface {
	CheckValid() error
	AsDuration() time.Duration
}, hasTimeout, idempotent bool) (orchestrator.Request, error) {
	switch {
	case len(payload) == 0:
		return orchestrator.Request{}, fieldError(prefix+"payload", "required (a UDS request starts with its service id)")
	case len(payload) > maxPayload:
		return orchestrator.Request{}, fieldError(prefix+"payload", "longer than %d bytes (%d)", maxPayload, len(payload))
	}
	req := orchestrator.Request{Payload: payload, Idempotent: idempotent}
	if hasTimeout {
		d, err := validateDuration(prefix+"timeout", timeout, time.Millisecond, maxRequestTimeout)
		if err != nil {
			return orchestrator.Request{}, err
		}
		req.Timeout = d
	}
	return req, nil
}

func validateResult(r *orchestratorv1.FinishResult) error {
	if r == nil || len(r.GetCodes()) == 0 {
		return fieldError("result.codes", "at least one result code is required")
	}
	for i, c := range r.GetCodes() {
		if _, ok := orchestratorv1.ResultCode_name[int32(c)]; !ok || c == orchestratorv1.ResultCode_RESULT_CODE_UNSPECIFIED {
			return fieldError(fmt.Sprintf("result.codes[%d]", i), "unknown result code %d", c)
		}
	}
	if _, ok := orchestratorv1.UserFeedback_name[int32(r.GetUserFeedback())]; !ok {
		return fieldError("result.user_feedback", "unknown user feedback %d", r.GetUserFeedback())
	}
	if len(r.GetDescription()) > maxReasonLen {
		return fieldError("result.description", "longer than %d characters", maxReasonLen)
	}
	return nil
}
