package orchestrator

import (
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
	"github.com/obdorch/obdorch/orchestrator/session"
)

// busConfigs converts bus definitions to openOBD's.
func busConfigs(buses []session.Bus) []*openobdv1.BusConfiguration {
	out := make([]*openobdv1.BusConfiguration, 0, len(buses))
	for _, b := range buses {
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
		out = append(out, bc)
	}
	return out
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

func serviceResult(r *session.Result) *openobdv1.ServiceResult {
	out := &openobdv1.ServiceResult{}
	if r == nil {
		out.Result = []openobdv1.Result{openobdv1.Result_RESULT_UNDEFINED}
		return out
	}
	for _, c := range r.Codes {
		out.Result = append(out.Result, openobdv1.Result(c))
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
