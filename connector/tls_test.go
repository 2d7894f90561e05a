package connector_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/connector/fake"
)

// The default env serves TLS on a random port (not 443) and hands out
// "127.0.0.1:<port>" endpoints: the whole session, controller and session
// endpoint, runs over TLS.
func TestTLSOnAnyPort(t *testing.T) {
	e := newEnv(t)
	s, info := e.attach(t)
	if _, port, _ := net.SplitHostPort(info.GRPCEndpoint); port == "443" {
		t.Fatalf("endpoint %q is on port 443; this test needs another port", info.GRPCEndpoint)
	}
	ch := openEngine(t, s)
	if _, err := ch.Request(testContext(t), readVIN); err != nil {
		t.Fatalf("Request() over TLS = %v", err)
	}
}

// A client that is not Insecure never speaks plaintext: against a plaintext
// server no call reaches it (the credentials would travel in clear).
func TestPlaintextServerRefused(t *testing.T) {
	e := newEnv(t, plaintext)
	c := e.newClient(t, func(c *connector.Config) { c.Insecure = false })
	if _, err := c.StartSessionOnTicket(testContext(t), ticketNumber); err == nil {
		t.Fatal("StartSessionOnTicket() against a plaintext server without Insecure = nil error")
	}
	if calls := e.srv.Calls(); len(calls) != 0 {
		t.Errorf("the plaintext server received calls %v, want none", calls)
	}
}

// Insecure is plaintext toward both the controller and the session endpoint.
func TestInsecurePlaintext(t *testing.T) {
	e := newEnv(t, plaintext)
	s, _ := e.attach(t)
	if _, err := openEngine(t, s).Request(testContext(t), readVIN); err != nil {
		t.Fatalf("Request() over plaintext with Insecure = %v", err)
	}
}

// A server whose certificate no configured root signed is refused.
func TestUntrustedCertificateRefused(t *testing.T) {
	e := newEnv(t)
	c := e.newClient(t, func(c *connector.Config) { c.RootCAs = nil }) // system roots only
	if _, err := c.StartSessionOnTicket(testContext(t), ticketNumber); err == nil {
		t.Fatal("StartSessionOnTicket() against a server with an untrusted certificate = nil error")
	}
}

// A session endpoint without a port is reached on the configured port, as
// Jifeline's clients do, and over TLS.
func TestEndpointWithoutPortUsesConfiguredPort(t *testing.T) {
	e := newEnv(t, func(fo *fake.Options, _ *connector.Config) { fo.Endpoint = "127.0.0.1" })
	s, info := e.attach(t)
	if info.GRPCEndpoint != "127.0.0.1" {
		t.Fatalf("endpoint = %q, want 127.0.0.1", info.GRPCEndpoint)
	}
	if got, want := strconv.Itoa(e.cfg.Port), "443"; got == want {
		t.Fatalf("configured port is %s; this test needs another port", got)
	}
	if err := s.ConfigureBus(testContext(t), obdCAN); err != nil {
		t.Fatalf("ConfigureBus() on a port-less endpoint = %v", err)
	}
	if _, err := openEngine(t, s).Request(testContext(t), readVIN); err != nil {
		t.Fatalf("Request() on a port-less endpoint = %v", err)
	}
}
