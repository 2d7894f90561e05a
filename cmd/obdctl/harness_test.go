package main

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/connector/fake/fakejifeline"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/controlplane"
	"github.com/obdorch/obdorch/orchestrator/store"
	"github.com/obdorch/obdorch/partner"
)

const (
	adminToken  = "admin-token-0123456789"
	viewerToken = "viewer-token-0123456789"
)

// testOrchestrator is an orchestrator served in-process on loopback, wired as
// cmd/orchestrator wires it, against the fake Jifeline. Its intake takes no
// tickets by itself (intake state "outsourced"): sessions start when the test
// starts them.
type testOrchestrator struct {
	addr string
	jf   *fakejifeline.Env
}

func startOrchestrator(t *testing.T, tickets int) *testOrchestrator {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.DiscardHandler)
	jf, err := fakejifeline.Start(ctx, fakejifeline.Options{Tickets: tickets, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	emb, err := store.StartEmbedded(ctx, store.EmbeddedConfig{Dir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, store.Config{Endpoints: emb.Endpoints(), Replica: "replica-1", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := partner.NewClient(partner.Config{BaseURL: jf.PartnerURL, ClientID: jf.ClientID, ClientSecret: jf.ClientSecret, AllowTicketWrite: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	host, portS, _ := net.SplitHostPort(jf.OpenOBDAddr)
	port, _ := strconv.Atoi(portS)
	oc, err := connector.New(connector.Config{ClientID: jf.ClientID, ClientSecret: jf.ClientSecret, ClusterID: "001", Host: host, Port: port, Insecure: true, Logger: log,
		ResponseTimeout: 30 * time.Second}) // room for a loaded machine
	if err != nil {
		t.Fatal(err)
	}
	var srv *controlplane.Server
	serving := make(chan struct{})
	core, err := orchestrator.New(orchestrator.Config{
		IntakeState: partner.TicketOutsourced, ResyncInterval: time.Hour, Workers: 8, LeaseTTL: 30 * time.Second,
		Logger: log,
		OnHealth: func(healthy bool, _ string) {
			if healthy && srv != nil {
				srv.SetServing(true)
				select {
				case <-serving:
				default:
					close(serving)
				}
			}
		},
	}, st, pc, oc)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := controlplane.LoadTokens(strings.NewReader(adminToken + " admin ops\n" + viewerToken + " viewer eve\n"))
	if err != nil {
		t.Fatal(err)
	}
	unary, stream := controlplane.AuthInterceptors(tokens)
	srv = controlplane.NewServer(controlplane.NewService(core, controlplane.Options{Logger: log}),
		controlplane.ServerOptions{Logger: log, Unary: []grpc.UnaryServerInterceptor{unary}, Stream: []grpc.StreamServerInterceptor{stream}})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	coreDone := make(chan error, 1)
	go func() { coreDone <- core.Start(ctx) }()
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		<-serveDone
		cancel()
		<-coreDone
		oc.Close()
		pc.CloseIdleConnections()
		st.Close()
		emb.Close()
		jf.Close()
	})
	select {
	case <-serving:
	case <-time.After(30 * time.Second):
		t.Fatal("orchestrator not SERVING within 30 s")
	}
	return &testOrchestrator{addr: lis.Addr().String(), jf: jf}
}
