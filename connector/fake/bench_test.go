package fake_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/obdorch/obdorch/connector/fake"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

// BenchmarkIsotpSessions measures ISO-TP round trips (22 F1 90 to the
// engine ECU) of 64 sessions at once, each with its own stream, over
// loopback gRPC: how the fake serves sessions that run side by side. Run it
// with -mutexprofile to see what they wait for.
func BenchmarkIsotpSessions(b *testing.B) {
	const sessions = 64
	targets := make([]fake.Target, sessions)
	for i := range targets {
		targets[i] = fake.Target{
			TicketID:      fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			TicketNumber:  fmt.Sprint(7000000 + i),
			ConnectorID:   fmt.Sprintf("00000000-0000-4000-9000-%012d", i),
			ConnectorName: fmt.Sprint(1000 + i),
		}
	}
	_, addr := fake.Listen(b, fake.Options{ClientID: clientID, ClientSecret: clientSecret, Directory: fake.NewStaticDirectory(targets...)})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	ctx := b.Context()
	bearer := func(tok string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	ctrl := openobdv1.NewSessionControllerClient(conn)
	ct, err := ctrl.GetSessionControllerToken(ctx, &openobdv1.Authenticate{ClientId: clientID, ClientSecret: clientSecret})
	if err != nil {
		b.Fatal(err)
	}
	streams := make(chan openobdv1.Can_OpenIsotpStreamClient, sessions)
	for _, t := range targets {
		info, err := ctrl.StartSessionOnTicket(bearer(ct.GetValue()), &openobdv1.TicketId{Value: t.TicketNumber})
		if err != nil {
			b.Fatal(err)
		}
		st, err := openobdv1.NewSessionClient(conn).Authenticate(bearer(info.GetAuthenticationToken()), &openobdv1.EmptyMessage{})
		if err != nil {
			b.Fatal(err)
		}
		cfg, err := openobdv1.NewConfigClient(conn).ConfigureBus(bearer(st.GetValue()))
		if err != nil {
			b.Fatal(err)
		}
		if err := cfg.Send(canBus); err != nil {
			b.Fatal(err)
		}
		if _, err := cfg.CloseAndRecv(); err != nil {
			b.Fatal(err)
		}
		s, err := openobdv1.NewCanClient(conn).OpenIsotpStream(bearer(st.GetValue()))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Send(&openobdv1.IsotpMessage{Channel: engine}); err != nil {
			b.Fatal(err)
		}
		streams <- s
	}
	want := "62F190" + fake.EncodePayload([]byte(fake.DefaultVIN))
	// Each parallel goroutine takes one session's stream.
	b.SetParallelism(max(1, sessions/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		s := <-streams
		for pb.Next() {
			if err := s.Send(&openobdv1.IsotpMessage{Channel: engine, Payload: "22F190"}); err != nil {
				b.Error(err)
				return
			}
			m, err := s.Recv()
			if err != nil {
				b.Error(err)
				return
			}
			if m.GetPayload() != want {
				b.Errorf("payload = %s, want %s", m.GetPayload(), want)
				return
			}
		}
	})
}
