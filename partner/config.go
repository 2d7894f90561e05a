package partner

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Defaults of Config.
const (
	DefaultBaseURL              = "https://partner-api-001.prd.jifeline.cloud"
	DefaultUserAgent            = "obdorch-partner-client"
	DefaultTimeout              = 30 * time.Second
	DefaultMaxRetries           = 4
	DefaultMaxRetryElapsed      = time.Minute
	DefaultRetryInitialInterval = 500 * time.Millisecond
	DefaultRetryMaxInterval     = 15 * time.Second
)

// BaseURLForCluster returns the Partner API base URL of a Jifeline cluster: "001" is Europe (the
// default when cluster is empty), "002" the USA. The "002" host follows the pattern of "001" and
// is an assumption.
func BaseURLForCluster(cluster string) string {
	if cluster == "" {
		cluster = "001"
	}
	return "https://partner-api-" + cluster + ".prd.jifeline.cloud"
}

// Config configures a Client. The zero value of each optional field selects its default.
type Config struct {
	// BaseURL is the Partner API root; default DefaultBaseURL (cluster 001).
	BaseURL string
	// TokenURL is the OAuth2 token endpoint; default BaseURL + PathToken.
	TokenURL string
	// ClientID and ClientSecret are the Partner API credentials (the same ones openOBD takes).
	// Required. The secret is never logged nor put into an error.
	ClientID     string
	ClientSecret string

	// HTTPClient sends the requests; default a client over a clone of http.DefaultTransport.
	// Its transport is wrapped for OpenTelemetry; its Timeout, if any, still applies.
	HTTPClient *http.Client
	// UserAgent is sent with every request; default DefaultUserAgent.
	UserAgent string
	// Timeout bounds each HTTP attempt, including reading the answer; default DefaultTimeout.
	// The whole call, retries included, is bounded by MaxRetryElapsed and the caller's context.
	Timeout time.Duration

	// MaxRetries is how many times a failed request is retried (429, 408, 5xx other than 501,
	// timeouts and transport errors); default DefaultMaxRetries, negative means never.
	MaxRetries int
	// MaxRetryElapsed stops retrying once the next wait would end later than this after the
	// first attempt; default DefaultMaxRetryElapsed. A Retry-After beyond it ends the call at once.
	MaxRetryElapsed time.Duration
	// RetryInitialInterval and RetryMaxInterval shape the jittered exponential backoff between
	// attempts; defaults DefaultRetryInitialInterval and DefaultRetryMaxInterval. A longer
	// Retry-After from the server wins.
	RetryInitialInterval time.Duration
	RetryMaxInterval     time.Duration

	// AllowTicketWrite enables Client.UpdateTicket. Off by default, because the write endpoint is
	// an assumption (see PathTickets) and a write changes what Jifeline's other users see.
	AllowTicketWrite bool

	// Logger receives request and retry records at Debug, Info and Warn; default discards.
	Logger *slog.Logger
	// TracerProvider provides the tracer for operation and HTTP spans; default the global one.
	TracerProvider trace.TracerProvider
}

// Validate reports every invalid field of c, each error naming its field and wrapping
// ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}
	checkURL := func(field, raw string) {
		if raw == "" {
			return
		}
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			bad(field, "not a URL")
		case u.Scheme != "http" && u.Scheme != "https":
			bad(field, "scheme must be http or https, got %q", u.Scheme)
		case u.Host == "":
			bad(field, "missing host")
		case u.User != nil:
			bad(field, "must not contain user info")
		case u.RawQuery != "" || u.Fragment != "":
			bad(field, "must not have a query or fragment")
		}
	}
	checkURL("BaseURL", c.BaseURL)
	checkURL("TokenURL", c.TokenURL)
	if c.ClientID == "" {
		bad("ClientID", "required")
	}
	if c.ClientSecret == "" {
		bad("ClientSecret", "required")
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"Timeout", c.Timeout},
		{"MaxRetryElapsed", c.MaxRetryElapsed},
		{"RetryInitialInterval", c.RetryInitialInterval},
		{"RetryMaxInterval", c.RetryMaxInterval},
	} {
		if d.v < 0 {
			bad(d.field, "must not be negative, got %v", d.v)
		}
	}
	if c.RetryInitialInterval > 0 && c.RetryMaxInterval > 0 && c.RetryInitialInterval > c.RetryMaxInterval {
		bad("RetryInitialInterval", "%v exceeds RetryMaxInterval %v", c.RetryInitialInterval, c.RetryMaxInterval)
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every unset optional field set to its default.
func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.TokenURL == "" {
		c.TokenURL = trimSlash(c.BaseURL) + PathToken
	}
	if c.UserAgent == "" {
		c.UserAgent = DefaultUserAgent
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	switch {
	case c.MaxRetries == 0:
		c.MaxRetries = DefaultMaxRetries
	case c.MaxRetries < 0:
		c.MaxRetries = 0
	}
	if c.MaxRetryElapsed == 0 {
		c.MaxRetryElapsed = DefaultMaxRetryElapsed
	}
	if c.RetryInitialInterval == 0 {
		c.RetryInitialInterval = DefaultRetryInitialInterval
		if c.RetryMaxInterval > 0 {
			c.RetryInitialInterval = min(c.RetryInitialInterval, c.RetryMaxInterval)
		}
	}
	if c.RetryMaxInterval == 0 {
		c.RetryMaxInterval = max(DefaultRetryMaxInterval, c.RetryInitialInterval)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
