package controlplane

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/session"
)

// ownerCore answers Send with the name of the caller it served.
type ownerCore struct{ stubCore }

func (c *ownerCore) Send(ctx context.Context, _, _ string, _ orchestrator.Channel, _ orchestrator.Request) (orchestrator.Response, error) {
	return orchestrator.Response{Payload: []byte(callerName(ctx))}, nil
}

// elsewhereCore says every session is owned by replica "b" at addr.
type elsewhereCore struct {
	stubCore
	addr string
}

func (c *elsewhereCore) Send(context.Context, string, string, orchestrator.Channel, orchestrator.Request) (orchestrator.Response, error) {
	return orchestrator.Response{}, &orchestrator.NotOwnerError{SessionID: "s1", Owner: "b", Address: c.addr}
}

type noRegistry struct{}

func (noRegistry) ReplicaAddress(context.Context, string) (string, bool, error) {
	return "", false, nil
}

// issueBoth signs a certificate for the loopback addresses usable both to
// serve and as a client, as a replica's certificate must be under mTLS.
func (ca *testCA) issueBoth(t *testing.T, name string, usages ...x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(t), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usages,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, filepath.Join(ca.dir, name+".pem"), "CERTIFICATE", der), writePEM(t, filepath.Join(ca.dir, name+"-key.pem"), "PRIVATE KEY", keyDER)
}

// serveReplica serves core with mTLS, tokens and a forwarder on a loopback
// port and returns its address.
func serveReplica(t *testing.T, core Core, name, certFile, keyFile, caFile string, tokens *Tokens, fwdTLS *tls.Config) string {
	t.Helper()
	creds, err := ServerTLS(certFile, keyFile, caFile)
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := NewForwarder(ForwardOptions{Replica: name, Token: "replica-token-0123456789", Registry: noRegistry{}, TLS: fwdTLS})
	if err != nil {
		t.Fatal(err)
	}
	au, as := AuthInterceptors(tokens)
	fu, fs := fwd.ForwardInterceptors()
	srv := NewServer(NewService(core, Options{Forwarder: fwd}), ServerOptions{
		Credentials: creds, Unary: []grpc.UnaryServerInterceptor{au, fu}, Stream: []grpc.StreamServerInterceptor{as, fs},
	})
	return serveLoopback(t, srv, fwd)
}

// TestForwardOverMutualTLS: with TLS on, a replica calls the owner over
// TLS, showing its own certificate to an owner that requires client
// certificates, and the owner serves the call as the original caller. A
// replica certificate that may not be used as a client's is refused by the
// owner, and the caller is told the owner could not be reached.
func TestForwardOverMutualTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	tokens, err := ParseTokensEnv("runner-token-0123456789a:runner:runner-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := tokens.AddReplicaToken("replica-token-0123456789"); err != nil {
		t.Fatal(err)
	}
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	bCert, bKey := ca.issueBoth(t, "b", both...)
	bAddr := serveReplica(t, &ownerCore{}, "b", bCert, bKey, ca.file, tokens, nil)

	_, _, runnerPair := ca.issue(t, "runner", false)
	call := func(entry string) (*orchestratorv1.SendResponse, error) {
		conn, err := grpc.NewClient(entry, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
			RootCAs: ca.pool, Certificates: []tls.Certificate{runnerPair}, MinVersion: tls.VersionTLS12,
		})))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		cctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer runner-token-0123456789a")
		return orchestratorv1.NewOrchestratorServiceClient(conn).Send(cctx, &orchestratorv1.SendRequest{
			SessionId: "s1", Channel: &orchestratorv1.Channel{BusName: "can0", RequestId: 0x7E0, ResponseId: 0x7E8}, Payload: []byte{0x3E, 0x00},
		})
	}

	for _, c := range []struct {
		name   string
		usages []x509.ExtKeyUsage
		want   codes.Code
	}{
		{"server and client certificate", both, codes.OK},
		{"server-only certificate", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, codes.Unavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			aCert, aKey := ca.issueBoth(t, "a-"+c.usages[len(c.usages)-1].String(), c.usages...)
			fwdTLS, err := ReplicaClientTLSConfig(aCert, aKey, ca.file)
			if err != nil {
				t.Fatal(err)
			}
			aAddr := serveReplica(t, &elsewhereCore{addr: bAddr}, "a", aCert, aKey, ca.file, tokens, fwdTLS)
			resp, err := call(aAddr)
			if status.Code(err) != c.want {
				t.Fatalf("Send through a = %v, want %s", err, c.want)
			}
			if c.want == codes.OK && string(resp.GetPayload()) != "runner-1" {
				t.Errorf("the owner served the call as %q, want runner-1", resp.GetPayload())
			}
			if c.want == codes.Unavailable {
				var detail *orchestratorv1.NotOwnerDetail
				for _, d := range status.Convert(err).Details() {
					if nd, ok := d.(*orchestratorv1.NotOwnerDetail); ok {
						detail = nd
					}
				}
				if detail.GetOwner() != "b" || detail.GetOwnerAddress() != bAddr {
					t.Errorf("UNAVAILABLE detail = %v, want owner b at %s", detail, bAddr)
				}
			}
		})
	}
}

// blockingChannel holds every request until its context ends.
type blockingChannel struct {
	started, cancelled, closed chan struct{}
	done                       chan struct{}
}

func (c *blockingChannel) Do(ctx context.Context, _ orchestrator.Request) (orchestrator.Response, error) {
	close(c.started)
	<-ctx.Done()
	close(c.cancelled)
	return orchestrator.Response{}, ctx.Err()
}
func (c *blockingChannel) Done() <-chan struct{} { return c.done }
func (c *blockingChannel) Err() error            { return nil }
func (c *blockingChannel) Close() error          { close(c.closed); return nil }

type channelOwnerCore struct {
	stubCore
	ch *blockingChannel
}

func (c *channelOwnerCore) OpenChannel(context.Context, string, string, orchestrator.Channel) (orchestrator.RelayChannel, *session.Record, error) {
	return c.ch, &session.Record{ID: "s1", State: session.StateRunning}, nil
}

type channelElsewhereCore struct {
	stubCore
	addr string
}

func (c *channelElsewhereCore) OpenChannel(context.Context, string, string, orchestrator.Channel) (orchestrator.RelayChannel, *session.Record, error) {
	return nil, nil, &orchestrator.NotOwnerError{SessionID: "s1", Owner: "b", Address: c.addr}
}

// servePlain serves core with a forwarder, without TLS or tokens, on a
// loopback port.
func servePlain(t *testing.T, core Core, name string) string {
	t.Helper()
	fwd, err := NewForwarder(ForwardOptions{Replica: name, Token: "replica-token-0123456789", Registry: noRegistry{}})
	if err != nil {
		t.Fatal(err)
	}
	fu, fs := fwd.ForwardInterceptors()
	srv := NewServer(NewService(core, Options{Forwarder: fwd}), ServerOptions{Unary: []grpc.UnaryServerInterceptor{fu}, Stream: []grpc.StreamServerInterceptor{fs}})
	return serveLoopback(t, srv, fwd)
}

// TestForwardedExchangeCancelledByTheRunner: a runner leaving an Exchange
// relayed through another replica ends the owner's stream too: the request
// in flight on the owner is cancelled and the owner releases the channel.
func TestForwardedExchangeCancelledByTheRunner(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ch := &blockingChannel{started: make(chan struct{}), cancelled: make(chan struct{}), closed: make(chan struct{}), done: make(chan struct{})}
	bAddr := servePlain(t, &channelOwnerCore{ch: ch}, "b")
	aAddr := servePlain(t, &channelElsewhereCore{addr: bAddr}, "a")

	conn, err := grpc.NewClient(aAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sctx, leave := context.WithCancel(ctx)
	defer leave()
	stream, err := orchestratorv1.NewOrchestratorServiceClient(conn).Exchange(sctx)
	if err != nil {
		t.Fatal(err)
	}
	channel := &orchestratorv1.Channel{BusName: "can0", RequestId: 0x7E0, ResponseId: 0x7E8}
	if err := stream.Send(&orchestratorv1.ExchangeRequest{Kind: &orchestratorv1.ExchangeRequest_Open{Open: &orchestratorv1.OpenChannel{SessionId: "s1", Channel: channel}}}); err != nil {
		t.Fatal(err)
	}
	if msg, err := stream.Recv(); err != nil || msg.GetOpened() == nil {
		t.Fatalf("first message through a = %v, %v; want opened", msg, err)
	}
	if err := stream.Send(&orchestratorv1.ExchangeRequest{Kind: &orchestratorv1.ExchangeRequest_Request{Request: &orchestratorv1.UdsRequest{Payload: []byte{0x3E, 0x00}}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch.started:
	case <-ctx.Done():
		t.Fatal("timed out waiting until the request reaches the owner")
	}
	leave()
	for _, w := range []struct {
		what string
		c    chan struct{}
	}{{"the owner's request is cancelled", ch.cancelled}, {"the owner releases the channel", ch.closed}} {
		select {
		case <-w.c:
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", w.what)
		}
	}
}

// serveLoopback serves srv on a loopback port until the test ends, then
// stops it and fwd; it returns the address.
func serveLoopback(t *testing.T, srv *Server, fwd *Forwarder) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		_ = fwd.Close()
	})
	return lis.Addr().String()
}
