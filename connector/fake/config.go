package fake

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc"

	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

// MaxBuses is how many buses one configureBus stream may configure.
const MaxBuses = 4

// configService implements openOBD.v1.config.
type configService struct {
	openobdv1.UnsafeConfigServer
	s *Server
}

var _ openobdv1.ConfigServer = (*configService)(nil)

func (c *configService) ConfigureBus(stream grpc.ClientStreamingServer[openobdv1.BusConfiguration, openobdv1.EmptyMessage]) error {
	s := c.s
	sess, ctx, done, err := s.openStream(stream.Context(), openobdv1.Config_ConfigureBus_FullMethodName)
	if err != nil {
		return err
	}
	defer done()
	msgs, errc := receive(ctx, stream.Recv)
	v := newBusValidator()
	for {
		select {
		case <-ctx.Done():
			return streamErr(ctx)
		case err := <-errc:
			if !errors.Is(err, io.EOF) {
				return err
			}
			s.mu.Lock()
			if sess.state != StateActive {
				s.mu.Unlock()
				return errNotActive(sess.state)
			}
			sess.buses.Store(&v.buses)
			s.mu.Unlock()
			return stream.SendAndClose(&openobdv1.EmptyMessage{})
		case m := <-msgs:
			if err := v.add(m); err != nil {
				return err
			}
		}
	}
}

// receive forwards the messages of a client stream until recv fails; the
// error (io.EOF on a half-close) is delivered on the second channel. The
// goroutine ends when recv fails, which gRPC guarantees once the handler
// has returned.
func receive[T any](ctx context.Context, recv func() (*T, error)) (<-chan *T, <-chan error) {
	msgs := make(chan *T)
	errc := make(chan error, 1)
	go func() {
		for {
			m, err := recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return msgs, errc
}

type busValidator struct {
	buses map[string]*openobdv1.BusConfiguration
	pins  map[uint32]string // pin -> bus using it
}

func newBusValidator() *busValidator {
	return &busValidator{buses: map[string]*openobdv1.BusConfiguration{}, pins: map[uint32]string{}}
}

// add validates one bus configuration against the rules of openOBD and the
// buses already in the same stream.
func (v *busValidator) add(b *openobdv1.BusConfiguration) error {
	name := b.GetBusName()
	if name == "" {
		return errInvalidArgument("BusConfiguration.bus_name is required.")
	}
	if _, dup := v.buses[name]; dup {
		return errInvalidArgument("Bus %q is configured twice.", name)
	}
	if len(v.buses) == MaxBuses {
		return errInvalidArgument("At most %d buses can be configured.", MaxBuses)
	}
	var pins []uint32
	switch def := b.GetBusDefinition().(type) {
	case *openobdv1.BusConfiguration_CanBus:
		can := def.CanBus
		if can == nil {
			return errInvalidArgument("Bus %q: can_bus is empty.", name)
		}
		if can.GetPinPlus() == can.GetPinMin() {
			return errInvalidArgument("Bus %q: pin_plus and pin_min must differ.", name)
		}
		if _, ok := openobdv1.CanProtocol_name[int32(can.GetCanProtocol())]; !ok || can.GetCanProtocol() == openobdv1.CanProtocol_CAN_PROTOCOL_UNDEFINED {
			return errInvalidArgument("Bus %q: can_protocol must be set.", name)
		}
		if bitRate(can.GetCanBitRate()) == 0 {
			return errInvalidArgument("Bus %q: can_bit_rate must be set.", name)
		}
		pins = []uint32{can.GetPinPlus(), can.GetPinMin()}
	case *openobdv1.BusConfiguration_KlineBus:
		kl := def.KlineBus
		if kl == nil {
			return errInvalidArgument("Bus %q: kline_bus is empty.", name)
		}
		if _, ok := openobdv1.KlineProtocol_name[int32(kl.GetKlineProtocol())]; !ok || kl.GetKlineProtocol() == openobdv1.KlineProtocol_KLINE_PROTOCOL_UNDEFINED {
			return errInvalidArgument("Bus %q: kline_protocol must be set.", name)
		}
		if _, ok := openobdv1.KlineBitRate_name[int32(kl.GetKlineBitRate())]; !ok || kl.GetKlineBitRate() == openobdv1.KlineBitRate_KLINE_BIT_RATE_UNDEFINED {
			return errInvalidArgument("Bus %q: kline_bit_rate must be set.", name)
		}
		pins = []uint32{kl.GetPin()}
	default:
		return errInvalidArgument("Bus %q: can_bus or kline_bus is required.", name)
	}
	for _, p := range pins {
		if p < 1 || p > 16 {
			return errInvalidArgument("Bus %q: pin %d is not an OBD pin (1..16).", name, p)
		}
		if other, used := v.pins[p]; used {
			return errInvalidArgument("Bus %q: pin %d is already used by bus %q.", name, p, other)
		}
	}
	for _, p := range pins {
		v.pins[p] = name
	}
	v.buses[name] = b
	return nil
}

// bitRate returns the bit rate in bit/s of a CAN bit rate, 0 for undefined.
func bitRate(r openobdv1.CanBitRate) int {
	switch r {
	case openobdv1.CanBitRate_CAN_BIT_RATE_1000:
		return 1_000_000
	case openobdv1.CanBitRate_CAN_BIT_RATE_500:
		return 500_000
	case openobdv1.CanBitRate_CAN_BIT_RATE_250:
		return 250_000
	case openobdv1.CanBitRate_CAN_BIT_RATE_125:
		return 125_000
	case openobdv1.CanBitRate_CAN_BIT_RATE_100:
		return 100_000
	case openobdv1.CanBitRate_CAN_BIT_RATE_94:
		return 94_000
	case openobdv1.CanBitRate_CAN_BIT_RATE_83_3:
		return 83_333
	case openobdv1.CanBitRate_CAN_BIT_RATE_50:
		return 50_000
	case openobdv1.CanBitRate_CAN_BIT_RATE_33_3:
		return 33_333
	case openobdv1.CanBitRate_CAN_BIT_RATE_20:
		return 20_000
	case openobdv1.CanBitRate_CAN_BIT_RATE_10:
		return 10_000
	case openobdv1.CanBitRate_CAN_BIT_RATE_5:
		return 5_000
	default:
		return 0
	}
}

// frameBits is the length of an 8-byte CAN frame with stuffing, rounded:
// 125 bits take 0.25 ms at 500 kbit/s.
const frameBits = 125

// transferTime is how long an ISO-TP message of n bytes occupies a CAN bus
// of the given bit rate: one single frame up to 7 bytes, otherwise a first
// frame (6 bytes), a flow control frame and consecutive frames of 7 bytes.
func transferTime(n, bitsPerSecond int) time.Duration {
	if bitsPerSecond <= 0 || n <= 0 {
		return 0
	}
	frames := 1
	if n > 7 {
		frames = 2 + (n-6+6)/7
	}
	return time.Duration(frames*frameBits) * time.Second / time.Duration(bitsPerSecond)
}
