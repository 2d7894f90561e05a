package fake

import (
	"context"
	"time"

	"google.golang.org/grpc"

	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

// baseLatency is the connector round trip the fake reports without faults.
const baseLatency = 20 * time.Millisecond

// monitorService implements openOBD.v1.connectionMonitor.
type monitorService struct {
	openobdv1.UnsafeConnectionMonitorServer
	s *Server
}

var _ openobdv1.ConnectionMonitorServer = (*monitorService)(nil)

func (m *monitorService) GetConnectorInformation(ctx context.Context, _ *openobdv1.EmptyMessage) (*openobdv1.ConnectorInformation, error) {
	s := m.s
	if err := s.enter(ctx, openobdv1.ConnectionMonitor_GetConnectorInformation_FullMethodName); err != nil {
		return nil, err
	}
	sess, err := s.sessionAuth(ctx)
	if err != nil {
		return nil, err
	}
	return s.connectorInfo(sess), nil
}

func (m *monitorService) OpenConnectorInformationStream(_ *openobdv1.EmptyMessage, stream grpc.ServerStreamingServer[openobdv1.ConnectorInformation]) error {
	s := m.s
	sess, ctx, done, err := s.openStream(stream.Context(), openobdv1.ConnectionMonitor_OpenConnectorInformationStream_FullMethodName)
	if err != nil {
		return err
	}
	defer done()
	return every(ctx, s.opts.InfoPeriod, true, func() error {
		return stream.Send(s.connectorInfo(sess))
	})
}

// connectorInfo reports the link to the session's connector. The latency is
// a constant 20 ms plus the call latency fault; healthy follows openOBD's
// rule of an average latency below 500 ms.
func (s *Server) connectorInfo(sess *session) *openobdv1.ConnectorInformation {
	lat := (baseLatency + s.faults.settings().callLat).Milliseconds()
	l := sess.conn.link.Load()
	info := &openobdv1.ConnectorInformation{Connected: l.connected}
	if l.connected {
		info.ConnectedSince = uint64(l.since.UnixMilli())
		info.Latency = uint32(min(lat, 1<<31))
		info.Healthy = lat < 500
	}
	return info
}
