package connector

import (
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

// The domain types of the connector's API: callers describe buses, ISO-TP
// channels and results with these, and never see openOBD's wire types.

// Bus is one bus to configure on the connector: CAN or K-line.
type Bus struct {
	// Name is how channels refer to the bus.
	Name  string
	CAN   *CANBus
	KLine *KLineBus
}

// CANBus is a CAN bus on two pins of the OBD connector.
type CANBus struct {
	PinPlus, PinMinus uint32
	// BitRate in bit/s; CANBitRateSupported tells which openOBD runs.
	BitRate uint32
	// Frames selects raw CAN frames instead of ISO-TP.
	Frames bool
	// LowSpeed selects the low-speed (fault-tolerant) transceiver.
	LowSpeed bool
}

// KLineBus is a K-line bus on one pin.
type KLineBus struct {
	Pin uint32
	// BitRate in baud; KLineBitRateSupported tells which openOBD runs.
	BitRate uint32
	// FastInit selects ISO 14230 fast initialisation instead of slow.
	FastInit bool
}

// Channel addresses one ECU over ISO-TP on a configured bus.
type Channel struct {
	Bus                   string
	RequestID, ResponseID uint32
	// ExtRequest and ExtResponse are the extended addresses, if any.
	ExtRequest, ExtResponse *uint32
	// Padding is openOBD's padding number (0: the connector's default).
	Padding int32
}

// ServiceResult is the outcome reported by Session.Finish, in openOBD's
// Result and UserFeedback numbers.
type ServiceResult struct {
	// Codes holds at least one result (RESULT_UNDEFINED when empty).
	Codes        []int32
	UserFeedback int32
	Description  string
}

// CANBitRateSupported reports whether openOBD can run a CAN bus at bps bit/s.
func CANBitRateSupported(bps uint32) bool { _, ok := canBitRates[bps]; return ok }

// KLineBitRateSupported reports whether openOBD can run a K-line bus at bps
// baud.
func KLineBitRateSupported(bps uint32) bool { _, ok := klineBitRates[bps]; return ok }

var canBitRates = map[uint32]openobdv1.CanBitRate{
	1000000: openobdv1.CanBitRate_CAN_BIT_RATE_1000, 500000: openobdv1.CanBitRate_CAN_BIT_RATE_500,
	250000: openobdv1.CanBitRate_CAN_BIT_RATE_250, 125000: openobdv1.CanBitRate_CAN_BIT_RATE_125,
	100000: openobdv1.CanBitRate_CAN_BIT_RATE_100, 94000: openobdv1.CanBitRate_CAN_BIT_RATE_94,
	83300: openobdv1.CanBitRate_CAN_BIT_RATE_83_3, 50000: openobdv1.CanBitRate_CAN_BIT_RATE_50,
	33300: openobdv1.CanBitRate_CAN_BIT_RATE_33_3, 20000: openobdv1.CanBitRate_CAN_BIT_RATE_20,
	10000: openobdv1.CanBitRate_CAN_BIT_RATE_10, 5000: openobdv1.CanBitRate_CAN_BIT_RATE_5,
}

var klineBitRates = map[uint32]openobdv1.KlineBitRate{
	9600: openobdv1.KlineBitRate_KLINE_BIT_RATE_9600, 10400: openobdv1.KlineBitRate_KLINE_BIT_RATE_10400,
	15625: openobdv1.KlineBitRate_KLINE_BIT_RATE_15625,
}

// wire returns the bus as openOBD's BusConfiguration.
func (b Bus) wire() *openobdv1.BusConfiguration {
	bc := &openobdv1.BusConfiguration{BusName: b.Name}
	switch {
	case b.CAN != nil:
		proto := openobdv1.CanProtocol_CAN_PROTOCOL_ISOTP
		if b.CAN.Frames {
			proto = openobdv1.CanProtocol_CAN_PROTOCOL_FRAMES
		}
		speed := openobdv1.TransceiverSpeed_TRANSCEIVER_SPEED_HIGH
		if b.CAN.LowSpeed {
			speed = openobdv1.TransceiverSpeed_TRANSCEIVER_SPEED_LOW
		}
		bc.BusDefinition = &openobdv1.BusConfiguration_CanBus{CanBus: &openobdv1.CanBus{
			PinPlus: b.CAN.PinPlus, PinMin: b.CAN.PinMinus, CanProtocol: proto,
			CanBitRate: canBitRates[b.CAN.BitRate], Transceiver: &speed,
		}}
	case b.KLine != nil:
		proto := openobdv1.KlineProtocol_KLINE_PROTOCOL_ISO14230_SLOW
		if b.KLine.FastInit {
			proto = openobdv1.KlineProtocol_KLINE_PROTOCOL_ISO14230_FAST
		}
		bc.BusDefinition = &openobdv1.BusConfiguration_KlineBus{KlineBus: &openobdv1.KlineBus{
			Pin: b.KLine.Pin, KlineProtocol: proto, KlineBitRate: klineBitRates[b.KLine.BitRate],
		}}
	}
	return bc
}

// wire returns the channel as openOBD's IsotpChannel.
func (c Channel) wire() *openobdv1.IsotpChannel {
	ch := &openobdv1.IsotpChannel{
		BusName: c.Bus, RequestId: c.RequestID, ResponseId: c.ResponseID,
		ExtendedRequestAddress: c.ExtRequest, ExtendedResponseAddress: c.ExtResponse,
	}
	if c.Padding != 0 {
		p := openobdv1.Padding(c.Padding)
		ch.Padding = &p
	}
	return ch
}

// wire returns the result as openOBD's ServiceResult.
func (r ServiceResult) wire() *openobdv1.ServiceResult {
	out := &openobdv1.ServiceResult{}
	for _, c := range r.Codes {
		out.Result = append(out.Result, openobdv1.Result(c))
	}
	if len(out.Result) == 0 {
		out.Result = []openobdv1.Result{openobdv1.Result_RESULT_UNDEFINED}
	}
	if r.UserFeedback != 0 {
		fb := openobdv1.UserFeedback(r.UserFeedback)
		out.UserFeedback = &fb
	}
	if r.Description != "" {
		d := r.Description
		out.Description = &d
	}
	return out
}
