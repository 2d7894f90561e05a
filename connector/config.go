package connector

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
)

// Defaults used by New for zero fields of Config.
const (
	DefaultHost               = "grpc.openobd.com"
	DefaultPort               = 443
	DefaultClusterID          = "001" // Europe; "002" is the USA
	DefaultCallTimeout        = 10 * time.Second
	DefaultTokenLifetime      = 5400 * time.Second
	DefaultTokenRefreshMargin = 30 * time.Second
	DefaultResponseTimeout    = 2 * time.Second
	DefaultP2Star             = 5 * time.Second
	DefaultBusyRetryInterval  = 200 * time.Millisecond
	DefaultReconnectInitial   = 500 * time.Millisecond
	DefaultReconnectMax       = 30 * time.Second
)

// Config configures a Client. Zero fields take the defaults named on them;
// ClientID and ClientSecret are required.
type Config struct {
	// ClientID and ClientSecret are the Partner API credentials.
	ClientID     string
	ClientSecret string
	// ClusterID selects the Jifeline cluster. Default DefaultClusterID.
	ClusterID string

	// Host and Port address the session controller. Defaults
	// DefaultHost and DefaultPort. Port is also the port of a session
	// endpoint (SessionInfo.GRPCEndpoint) that names none, as in Jifeline's
	// clients.
	Host string
	Port int
	// Insecure turns TLS off toward the session controller and every session
	// endpoint (development only). Without it every connection uses TLS,
	// whatever port it is on: the session token travels on each call.
	Insecure bool
	// RootCAs verifies the servers' certificates; nil uses the system's
	// roots. Set it for a private CA (a test server, a proxy).
	RootCAs *x509.CertPool

	// CallTimeout bounds every unary call that has no earlier deadline.
	// Default DefaultCallTimeout.
	CallTimeout time.Duration
	// TokenLifetime is the assumed lifetime of a session-controller token
	// (the server does not say); the token is fetched again
	// TokenRefreshMargin before it ends. Defaults DefaultTokenLifetime and
	// DefaultTokenRefreshMargin.
	TokenLifetime      time.Duration
	TokenRefreshMargin time.Duration

	// ResponseTimeout is how long an ISO-TP request waits for the first
	// response. Default DefaultResponseTimeout.
	ResponseTimeout time.Duration
	// P2Star is how long an ISO-TP request keeps waiting after each
	// "response pending" (NRC 0x78). Default DefaultP2Star.
	P2Star time.Duration
	// BusyRetryInterval is the pause before a request answered with
	// "busy, repeat request" (NRC 0x21) is sent again. Default
	// DefaultBusyRetryInterval.
	BusyRetryInterval time.Duration

	// ReconnectInitial and ReconnectMax bound the jittered exponential
	// backoff between attempts to reopen a broken session-token stream.
	// Defaults DefaultReconnectInitial and DefaultReconnectMax.
	ReconnectInitial time.Duration
	ReconnectMax     time.Duration

	// Logger receives the client's logs. Default slog.Default().
	Logger *slog.Logger
	// Dialer, when set, opens every connection to openOBD instead of a TCP
	// dial (tests pass a bufconn dialer).
	Dialer func(ctx context.Context, addr string) (net.Conn, error)
	// DialOptions are appended to the client's own options for every gRPC
	// connection. The session-token streams do not use gRPC's client (see
	// Session) and so ignore them; Dialer and the TLS settings apply to both.
	DialOptions []grpc.DialOption
	// Now is the clock used for token expiry. Default time.Now.
	Now func() time.Time
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	setString(&c.ClusterID, DefaultClusterID)
	setString(&c.Host, DefaultHost)
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	setDuration(&c.CallTimeout, DefaultCallTimeout)
	setDuration(&c.TokenLifetime, DefaultTokenLifetime)
	setDuration(&c.TokenRefreshMargin, DefaultTokenRefreshMargin)
	setDuration(&c.ResponseTimeout, DefaultResponseTimeout)
	setDuration(&c.P2Star, DefaultP2Star)
	setDuration(&c.BusyRetryInterval, DefaultBusyRetryInterval)
	setDuration(&c.ReconnectInitial, DefaultReconnectInitial)
	setDuration(&c.ReconnectMax, DefaultReconnectMax)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func setString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

func setDuration(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// Validate reports the first invalid field by name. Zero values are valid
// where a default exists.
func (c Config) Validate() error {
	switch {
	case c.ClientID == "":
		return errors.New("connector: ClientID is required")
	case c.ClientSecret == "":
		return errors.New("connector: ClientSecret is required")
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("connector: Port %d is out of range 1-65535", c.Port)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"CallTimeout", c.CallTimeout},
		{"TokenLifetime", c.TokenLifetime},
		{"TokenRefreshMargin", c.TokenRefreshMargin},
		{"ResponseTimeout", c.ResponseTimeout},
		{"P2Star", c.P2Star},
		{"BusyRetryInterval", c.BusyRetryInterval},
		{"ReconnectInitial", c.ReconnectInitial},
		{"ReconnectMax", c.ReconnectMax},
	} {
		if d.v < 0 {
			return fmt.Errorf("connector: %s must not be negative, got %v", d.name, d.v)
		}
	}
	if c.TokenLifetime != 0 && c.TokenRefreshMargin >= c.TokenLifetime {
		return fmt.Errorf("connector: TokenRefreshMargin (%v) must be shorter than TokenLifetime (%v)", c.TokenRefreshMargin, c.TokenLifetime)
	}
	if c.ReconnectMax != 0 && c.ReconnectInitial > c.ReconnectMax {
		return fmt.Errorf("connector: ReconnectInitial (%v) must not exceed ReconnectMax (%v)", c.ReconnectInitial, c.ReconnectMax)
	}
	return nil
}
