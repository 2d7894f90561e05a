package orchestrator

import (
	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/orchestrator/session"
)

// busConfigs converts the record's bus definitions to the connector's.
func busConfigs(buses []session.Bus) []connector.Bus {
	out := make([]connector.Bus, 0, len(buses))
	for _, b := range buses {
		cb := connector.Bus{Name: b.Name}
		switch {
		case b.CAN != nil:
			cb.CAN = &connector.CANBus{PinPlus: b.CAN.PinPlus, PinMinus: b.CAN.PinMinus, BitRate: b.CAN.BitRate, Frames: b.CAN.Frames, LowSpeed: b.CAN.LowSpeed}
		case b.KLine != nil:
			cb.KLine = &connector.KLineBus{Pin: b.KLine.Pin, BitRate: b.KLine.BitRate, FastInit: b.KLine.FastInit}
		}
		out = append(out, cb)
	}
	return out
}

// serviceResult converts a runner's result to the connector's.
func serviceResult(r *session.Result) connector.ServiceResult {
	if r == nil {
		return connector.ServiceResult{}
	}
	return connector.ServiceResult{Codes: r.Codes, UserFeedback: r.UserFeedback, Description: r.Description}
}
