package connector_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/connector/fake"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

// Example reads a vehicle's VIN through openOBD: start a session on a
// ticket, claim it, configure the OBD CAN bus, ask the engine ECU and finish.
// The fake openOBD on a loopback port stands in for grpc.openobd.com.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	host, port, roots, stop := serveExampleFake()
	defer stop()

	client, err := connector.New(connector.Config{
		ClientID:     "partner-client",
		ClientSecret: "partner-secret",
		Host:         host,  // default grpc.openobd.com
		Port:         port,  // default 443; TLS on every port unless Insecure
		RootCAs:      roots, // the fake's own CA; default the system's roots
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	info, err := client.StartSessionOnTicket(ctx, "7848095")
	if err != nil {
		log.Fatal(err)
	}
	session, err := client.Attach(ctx, info, connector.OnToken(func(token string, received time.Time) {
		// Persist the newest token here to Resume after a restart.
	}))
	if err != nil {
		log.Fatal(err)
	}
	defer session.Close()

	err = session.ConfigureBus(ctx, connector.Bus{
		Name: "obd",
		CAN:  &connector.CANBus{PinPlus: 6, PinMinus: 14, BitRate: 500000}, // ISO-TP
	})
	if err != nil {
		log.Fatal(err)
	}
	engine, err := session.OpenIsotp(ctx, connector.Channel{Bus: "obd", RequestID: 0x7E0, ResponseID: 0x7E8})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close()

	resp, err := engine.Request(ctx, []byte{0x22, 0xF1, 0x90}) // ReadDataByIdentifier VIN
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("VIN: %s\n", resp[3:])

	_, err = engine.Request(ctx, []byte{0x22, 0xAB, 0xCD}) // an identifier the ECU does not know
	fmt.Println(err)

	err = session.Finish(ctx, connector.ServiceResult{Codes: []int32{int32(openobdv1.Result_RESULT_SUCCESS)}})
	if err != nil {
		log.Fatal(err)
	}
	info, err = client.GetSession(ctx, info.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("state:", info.State)
	// Output:
	// VIN: WVWZZZAUZKW000001
	// uds: ReadDataByIdentifier (0x22): requestOutOfRange (0x31)
	// state: finished
}

// serveExampleFake serves a fake openOBD with one ticket on a loopback port,
// over TLS with a generated certificate.
func serveExampleFake() (host string, port int, roots *x509.CertPool, stop func()) {
	cert, err := fake.NewCertificate("127.0.0.1")
	if err != nil {
		log.Fatal(err)
	}
	srv, err := fake.New(fake.Options{
		ClientID:     "partner-client",
		ClientSecret: "partner-secret",
		Directory: fake.NewStaticDirectory(fake.Target{
			TicketNumber: "7848095",
			ConnectorID:  "c571e33b-6b12-455a-8388-0c025295564a",
		}),
	})
	if err != nil {
		log.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ctx, lis, grpc.Creds(credentials.NewTLS(cert.ServerConfig())))
	}()
	host, p, _ := net.SplitHostPort(lis.Addr().String())
	port, _ = strconv.Atoi(p)
	return host, port, cert.RootCAs(), func() {
		cancel()
		<-done
	}
}
