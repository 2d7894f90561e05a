package fake

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

// maxCANID is the largest (29-bit) CAN identifier.
const maxCANID = 0x1FFFFFFF

// canService implements openOBD.v1.can.
type canService struct {
	openobdv1.UnsafeCanServer
	s *Server
}

var _ openobdv1.CanServer = (*canService)(nil)

func (c *canService) OpenIsotpStream(stream grpc.BidiStreamingServer[openobdv1.IsotpMessage, openobdv1.IsotpMessage]) error {
	s := c.s
	sess, ctx, done, err := s.openStream(stream.Context(), openobdv1.Can_OpenIsotpStream_FullMethodName)
	if err != nil {
		return err
	}
	defer done()
	msgs, errc := receive(ctx, stream.Recv)
	for {
		select {
		case <-ctx.Done():
			return streamErr(ctx)
		case err := <-errc:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case m := <-msgs:
			// Requests are answered one after the other, like an ECU that
			// handles one request at a time; later ones wait in gRPC's flow
			// control.
			if err := s.isotp(ctx, sess, m, stream.Send); err != nil {
				return err
			}
		}
	}
}

// isotp handles one message of an ISO-TP stream: it validates the channel
// and payload, passes the request to the vehicle and sends its replies at
// their time. An error ends the stream. It takes no server-wide lock (see
// Server): the session's buses, the connector's link and vehicle and the
// fault settings are loaded atomically.
func (s *Server) isotp(ctx context.Context, sess *session, m *openobdv1.IsotpMessage, send func(*openobdv1.IsotpMessage) error) error {
	if ctx.Err() != nil {
		// The stream ended (its session ended, its streams were dropped or
		// the fake closes) while this message waited: no answer.
		return streamErr(ctx)
	}
	ch := m.GetChannel()
	if ch == nil {
		return errMissingChannel
	}
	bus := (*sess.buses.Load())[ch.GetBusName()]
	conn := sess.conn
	connected := conn.link.Load().connected
	if err := checkChannel(ch, bus); err != nil {
		return err
	}
	req, err := DecodePayload(m.GetPayload())
	if err != nil {
		return err
	}
	if len(req) == 0 {
		return nil // opens the channel; nothing to answer
	}
	if err := s.faults.waitHang(ctx, s.closing); err != nil {
		return err
	}
	if !connected {
		return nil // nothing reaches the vehicle
	}
	replies := s.exchange(conn, ch.GetRequestId(), ch.GetResponseId(), req)
	if len(replies) == 0 {
		return nil
	}
	rate := 0
	if s.opts.BusTiming {
		rate = bitRate(bus.GetCanBus().GetCanBitRate())
	}
	latency := s.faults.settings().isotpLat
	for i, r := range replies {
		wait := r.After + latency + transferTime(len(r.Payload), rate)
		if i == 0 {
			wait += transferTime(len(req), rate)
		}
		if err := sleep(ctx, s.closing, wait); err != nil {
			return err
		}
		if err := send(&openobdv1.IsotpMessage{Channel: ch, Payload: EncodePayload(r.Payload)}); err != nil {
			return err
		}
	}
	return nil
}

// exchange runs one request through the ECU faults and the vehicle and
// returns the replies that reach a client listening on responseID.
func (s *Server) exchange(conn *connector, requestID, responseID uint32, req []byte) []Reply {
	now := s.opts.Now()
	v := conn.vehicle.Load()
	fault := s.faults.takeECUFault(conn.key, requestID)
	if fault.silent {
		return nil
	}
	var (
		respID  uint32
		replies []Reply
		ok      bool
	)
	if fault.busy {
		respID, ok = v.ResponseID(requestID)
		replies = negative(req[0], NRCBusyRepeatRequest)
	} else {
		respID, replies, ok = v.Handle(now, requestID, req)
	}
	if !ok || respID != responseID {
		return nil
	}
	if fault.pending > 0 && len(replies) > 0 {
		pre := make([]Reply, fault.pending, fault.pending+len(replies))
		for i := range pre {
			pre[i].Payload = []byte{sidNegativeResponse, req[0], NRCResponsePending}
			if i > 0 {
				pre[i].After = s.opts.RoutinePendingSpacing
			}
		}
		replies[0].After += s.opts.RoutinePendingSpacing
		replies = append(pre, replies...)
	}
	return replies
}

// checkChannel validates an ISO-TP channel against the session's buses.
func checkChannel(ch *openobdv1.IsotpChannel, bus *openobdv1.BusConfiguration) error {
	if bus == nil {
		return errInvalidArgument("Bus %q is not configured.", ch.GetBusName())
	}
	if bus.GetCanBus().GetCanProtocol() != openobdv1.CanProtocol_CAN_PROTOCOL_ISOTP {
		return errInvalidArgument("Bus %q is not configured for ISO-TP.", ch.GetBusName())
	}
	if ch.GetRequestId() > maxCANID || ch.GetResponseId() > maxCANID {
		return errInvalidArgument("CAN ids must not exceed 0x%X.", maxCANID)
	}
	return nil
}

// DecodePayload decodes the hex payload of an ISO-TP message (upper or lower
// case). It returns INVALID_ARGUMENT for malformed hex and for more than
// MaxPayload bytes.
func DecodePayload(p string) ([]byte, error) {
	if len(p) > 2*MaxPayload {
		return nil, errInvalidArgument("Payload exceeds %d bytes.", MaxPayload)
	}
	b, err := hex.DecodeString(p)
	if err != nil {
		return nil, errInvalidArgument("Payload is not valid hex: %v.", err)
	}
	return b, nil
}

// EncodePayload encodes a payload as upper-case hex, as openOBD sends it.
func EncodePayload(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

func (c *canService) OpenRawStream(stream grpc.BidiStreamingServer[openobdv1.RawFrame, openobdv1.RawFrame]) error {
	return c.s.unimplemented(stream.Context(), openobdv1.Can_OpenRawStream_FullMethodName)
}

// klineService implements openOBD.v1.kline (not simulated).
type klineService struct {
	openobdv1.UnsafeKlineServer
	s *Server
}

var _ openobdv1.KlineServer = (*klineService)(nil)

func (k *klineService) OpenKlineStream(stream grpc.BidiStreamingServer[openobdv1.KlineMessage, openobdv1.KlineMessage]) error {
	return k.s.unimplemented(stream.Context(), openobdv1.Kline_OpenKlineStream_FullMethodName)
}

// userInterfaceService implements openOBD.v1.userInterface (not simulated).
type userInterfaceService struct {
	openobdv1.UnsafeUserInterfaceServer
	s *Server
}

var _ openobdv1.UserInterfaceServer = (*userInterfaceService)(nil)

func (u *userInterfaceService) OpenControlStream(stream grpc.BidiStreamingServer[openobdv1.Control, openobdv1.Control]) error {
	return u.s.unimplemented(stream.Context(), openobdv1.UserInterface_OpenControlStream_FullMethodName)
}

func (s *Server) unimplemented(ctx context.Context, method string) error {
	if err := s.enter(ctx, method); err != nil {
		return err
	}
	return status.Errorf(codes.Unimplemented, "%s is not simulated by the fake.", method)
}
