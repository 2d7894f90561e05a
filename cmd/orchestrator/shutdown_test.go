package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/obdorch/obdorch/connector/fake"
	"github.com/obdorch/obdorch/connector/fake/fakejifeline"
	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
)

// TestShutdownWithLiveStreams proves a SIGTERM (the cancellation of run's
// context) with a runner's streams open stops the service cleanly within
// --shutdown-grace: health turns NOT_SERVING for a watching load balancer;
// the open WatchSessions stream ends with UNAVAILABLE naming the
// start_revision to resume from and the open Exchange stream with
// UNAVAILABLE, so neither holds the stop up; a Send already at the ECU is
// still answered; run returns 0 before the grace runs out; and the openOBD
// session is left live for the next start, not interrupted.
func TestShutdownWithLiveStreams(t *testing.T) {
	o := shutdownWithLiveStreams(t)
	t.Logf("observed in order: NOT_SERVING #%d, watch end #%d, Exchange end #%d", o.health, o.watch, o.exchange)
}

// TestShutdownHealthBeforeStreams proves a health watcher (a load balancer)
// learns NOT_SERVING before the server ends the runners' streams, so that
// runners resuming their streams are sent elsewhere.
func TestShutdownHealthBeforeStreams(t *testing.T) {
	o := shutdownWithLiveStreams(t)
	if o.health > o.watch || o.health > o.exchange {
		t.Errorf("health turned NOT_SERVING after the streams ended (observed #%d, watch #%d, Exchange #%d)", o.health, o.watch, o.exchange)
	}
}

// shutdownOrder numbers what a runner observed during a stop, in order.
type shutdownOrder struct {
	health, watch, exchange int64
}

// shutdownWithLiveStreams runs the service against a fake Jifeline, opens a
// runner's streams, stops the service and checks how everything ended. It
// returns the order in which the runner saw health turn NOT_SERVING and its
// streams end.
func shutdownWithLiveStreams(t *testing.T) shutdownOrder {
	t.Helper()
	const grace = 2 * time.Second
	const spacing = 100 * time.Millisecond // between the ECU's "response pending" answers
	jf, err := fakejifeline.Start(context.WithoutCancel(t.Context()), fakejifeline.Options{
		Tickets: 1, Seed: 5, OpenOBD: fake.Options{RoutinePendingSpacing: spacing},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer jf.Close()
	host, port := splitAddr(t, jf.OpenOBDAddr)
	args := []string{
		"--listen", "127.0.0.1:0", "--admin-listen", "", "--data-dir", t.TempDir(), "--replica", "shutdown-test",
		"--openobd-host", host, "--openobd-port", port, "--openobd-insecure",
		"--partner-url", jf.PartnerURL, "--client-id", jf.ClientID, "--client-secret", jf.ClientSecret,
		"--shutdown-grace", grace.String(),
	}
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	exited := make(chan int, 1)
	go func() { exited <- run(ctx, args, env(nil), &stdout, &stderr) }()
	stopped := false
	defer func() {
		if stopped {
			return
		}
		cancel()
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			t.Error("run did not stop within 20 s of cancellation")
		}
	}()

	addr := waitAddr(t, &stdout, exited)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := orchestratorv1.NewOrchestratorServiceClient(conn)
	health := healthpb.NewHealthClient(conn)
	cctx, ccancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer ccancel()

	// The ticket's session is READY; a runner leases it.
	var session *orchestratorv1.Session
	for session == nil {
		resp, err := client.ListSessions(cctx, &orchestratorv1.ListSessionsRequest{
			States: []orchestratorv1.SessionState{orchestratorv1.SessionState_SESSION_STATE_READY},
		})
		switch {
		case err == nil && len(resp.GetSessions()) == 1:
			session = resp.GetSessions()[0]
		case cctx.Err() != nil:
			t.Fatalf("no READY session: %v", err)
		default:
			time.Sleep(10 * time.Millisecond)
		}
	}
	acq, err := client.AcquireSession(cctx, &orchestratorv1.AcquireSessionRequest{Runner: "shutdown-test"})
	if err != nil {
		t.Fatalf("AcquireSession: %v", err)
	}
	for {
		r, err := health.Check(cctx, &healthpb.HealthCheckRequest{})
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if cctx.Err() != nil {
			t.Fatalf("health never SERVING: %v %v", r, err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// order numbers what the runner observes, to tell what came first.
	var order atomic.Int64
	type ending struct {
		seq int64
		err error
		rev int64 // the last revision a watch received
	}

	// Health, watched: NOT_SERVING must come. The watch is then closed, as a
	// load balancer would, so that it does not hold the stop up itself.
	hctx, hcancel := context.WithCancel(cctx)
	defer hcancel()
	hw, err := health.Watch(hctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := hw.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health watch starts with %v, %v; want SERVING", r, err)
	}
	notServing := make(chan ending, 1)
	go func() {
		defer hcancel()
		for {
			r, err := hw.Recv()
			if err != nil {
				notServing <- ending{err: err}
				return
			}
			if r.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
				notServing <- ending{seq: order.Add(1)}
				return
			}
		}
	}()

	// A watcher reading the whole history.
	wctx, wcancel := context.WithCancel(cctx)
	defer wcancel()
	watch, err := client.WatchSessions(wctx, &orchestratorv1.WatchSessionsRequest{StartRevision: 1})
	if err != nil {
		t.Fatal(err)
	}
	watchEnded := make(chan ending, 1)
	firstEvent := make(chan struct{})
	go func() {
		var last int64
		for {
			ev, err := watch.Recv()
			if err != nil {
				watchEnded <- ending{seq: order.Add(1), err: err, rev: last}
				return
			}
			if last == 0 {
				close(firstEvent)
			}
			last = ev.GetRevision()
		}
	}()
	select {
	case <-firstEvent:
	case w := <-watchEnded:
		t.Fatalf("WatchSessions ended with %v before its first event", w.err)
	case <-cctx.Done():
		t.Fatal("WatchSessions delivered no event")
	}

	// An Exchange stream, used once and then idle.
	exctx, excancel := context.WithCancel(cctx)
	defer excancel()
	engine := &orchestratorv1.Channel{BusName: "can0", RequestId: 0x7E0, ResponseId: 0x7E8}
	ex, err := client.Exchange(exctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*orchestratorv1.ExchangeRequest{
		{Kind: &orchestratorv1.ExchangeRequest_Open{Open: &orchestratorv1.OpenChannel{
			SessionId: acq.GetSession().GetId(), LeaseId: acq.GetLeaseId(), Channel: engine,
		}}},
		{Kind: &orchestratorv1.ExchangeRequest_Request{Request: &orchestratorv1.UdsRequest{CorrelationId: 1, Payload: []byte{0x22, 0xF1, 0x90}}}},
	} {
		if err := ex.Send(m); err != nil {
			t.Fatalf("Exchange send: %v", err)
		}
	}
	wantVIN := append([]byte{0x62, 0xF1, 0x90}, session.GetVin()...)
	if m, err := ex.Recv(); err != nil || m.GetOpened() == nil {
		t.Fatalf("Exchange opened = %v, %v", m, err)
	}
	if m, err := ex.Recv(); err != nil || !bytes.Equal(m.GetResponse().GetPayload(), wantVIN) {
		t.Fatalf("Exchange VIN = %v, %v; want the VIN", m, err)
	}
	exchangeEnded := make(chan ending, 1)
	go func() {
		for {
			if _, err := ex.Recv(); err != nil {
				exchangeEnded <- ending{seq: order.Add(1), err: err}
				return
			}
		}
	}()

	// A Send that is at the ECU when the signal comes: the transmission ECU
	// answers "response pending" five times first (half a second in all).
	const transmission = 0x7E1
	if err := jf.OpenOBD.Faults().SetECUFault(session.GetConnectorId(), transmission, fake.ECUFault{Pending: 5}); err != nil {
		t.Fatal(err)
	}
	type sent struct {
		resp *orchestratorv1.SendResponse
		err  error
	}
	sendDone := make(chan sent, 1)
	go func() {
		resp, err := client.Send(cctx, &orchestratorv1.SendRequest{
			SessionId: acq.GetSession().GetId(), LeaseId: acq.GetLeaseId(),
			Channel: &orchestratorv1.Channel{BusName: "can0", RequestId: transmission, ResponseId: transmission + 8},
			Payload: []byte{0x22, 0xF1, 0x90},
		})
		sendDone <- sent{resp, err}
	}()
	// The fault is used up once the request has reached the ECU.
	for len(jf.OpenOBD.Faults().State().ECUs) > 0 {
		if cctx.Err() != nil {
			t.Fatal("the Send never reached the ECU")
		}
		time.Sleep(2 * time.Millisecond)
	}

	signalled := order.Add(1)
	began := time.Now()
	cancel()

	var code int
	select {
	case code = <-exited:
		stopped = true
	case <-time.After(grace + 5*time.Second):
		t.Fatalf("run still running %s after the signal", grace+5*time.Second)
	}
	took := time.Since(began)
	t.Logf("run returned %d %s after the signal", code, took.Round(time.Millisecond))
	if code != 0 {
		t.Errorf("run exit code %d, want 0; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "openOBD connections are INSECURE") {
		t.Error("--openobd-insecure was not logged as insecure at start")
	}
	if took >= grace || strings.Contains(stderr.String(), "grace period over") {
		t.Errorf("run took %s to stop, want less than the %s grace (open streams must not hold the stop up)", took.Round(time.Millisecond), grace)
	}

	h := <-notServing
	if h.err != nil {
		t.Fatalf("health watch ended with %v before NOT_SERVING", h.err)
	}
	if h.seq < signalled {
		t.Errorf("health turned NOT_SERVING before the signal")
	}
	w := <-watchEnded
	if status.Code(w.err) != codes.Unavailable || !strings.Contains(status.Convert(w.err).Message(), "start_revision="+strconv.FormatInt(w.rev+1, 10)) {
		t.Errorf("WatchSessions ended with %v, want UNAVAILABLE naming start_revision=%d", w.err, w.rev+1)
	}
	if w.rev == 0 {
		t.Error("the watcher received no event before the stop")
	}
	e := <-exchangeEnded
	if status.Code(e.err) != codes.Unavailable || !strings.Contains(status.Convert(e.err).Message(), "shutting down") {
		t.Errorf("Exchange ended with %v, want UNAVAILABLE saying the server is shutting down", e.err)
	}
	s := <-sendDone
	if s.err != nil || !bytes.Equal(s.resp.GetPayload(), wantVIN) {
		t.Errorf("Send at the ECU during the stop = %v, %v; want the VIN", s.resp.GetPayload(), s.err)
	}

	fs, ok := jf.OpenOBD.Session(session.GetOpenobdSessionId())
	if !ok || !fs.State.Live() {
		t.Errorf("openOBD session after the stop: %+v (found %v); want it live for the next start", fs.State, ok)
	}
	return shutdownOrder{health: h.seq, watch: w.seq, exchange: e.seq}
}
