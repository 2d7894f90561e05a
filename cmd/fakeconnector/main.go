// Command fakeconnector runs a fake Jifeline for test harnesses and demos:
// the openOBD gRPC services with simulated vehicles (package
// connector/fake) and the Partner API (package partner/partnertest), in one
// process, sharing tickets, connectors and sessions. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/obdorch/obdorch/cmd/internal/buildinfo"
	"github.com/obdorch/obdorch/connector/fake"
	"github.com/obdorch/obdorch/connector/fake/fakejifeline"
	"github.com/obdorch/obdorch/partner/partnertest"
)

// envPrefix prefixes the environment twin of every flag:
// --client-secret is also FAKECONNECTOR_CLIENT_SECRET.
const envPrefix = "FAKECONNECTOR_"

type config struct {
	openobdAddr      string
	partnerAddr      string
	allowRemote      bool
	tls              bool
	tlsCAFile        string
	connectorShape   string
	clientID         string
	clientSecret     string
	tickets          int
	seed             int64
	busTiming        bool
	tokenRotation    time.Duration
	tokenValidity    time.Duration
	controllerTokens time.Duration
	retention        time.Duration
	infoPeriod       time.Duration
	interruptCode    string
	routinePending   int
	routineSpacing   time.Duration
	logFormat        string
	logLevel         string
}

func (c *config) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.openobdAddr, "openobd-addr", "127.0.0.1:17001", "listen address of the fake openOBD gRPC services")
	fs.StringVar(&c.partnerAddr, "partner-addr", "127.0.0.1:17002", "listen address of the fake Partner API and the steering endpoints")
	fs.BoolVar(&c.allowRemote, "allow-non-loopback", false, "allow listening on non-loopback addresses (the Partner API is plaintext and steering is unauthenticated)")
	fs.BoolVar(&c.tls, "tls", false, "serve openOBD over TLS with a certificate generated at start (needs --tls-ca-file)")
	fs.StringVar(&c.tlsCAFile, "tls-ca-file", "", "with --tls: `file` to write the CA certificate to, for clients (e.g. orchestrator --openobd-ca, grpcurl -cacert)")
	fs.StringVar(&c.connectorShape, "connector-shape", string(partnertest.ConnectorShapeUUID), "Partner API connector JSON: uuid (id is the UUID) or integer (id is a number, the UUID in uuid)")
	fs.StringVar(&c.clientID, "client-id", fakejifeline.DefaultClientID, "Partner API / openOBD client id the fakes accept")
	fs.StringVar(&c.clientSecret, "client-secret", fakejifeline.DefaultClientSecret, "Partner API / openOBD client secret the fakes accept")
	fs.IntVar(&c.tickets, "tickets", 5, "number of pending demo tickets, each with a connector and a vehicle")
	fs.Int64Var(&c.seed, "seed", 1, "seed of the demo world (ids, ticket numbers, VINs)")
	fs.BoolVar(&c.busTiming, "bus-timing", false, "delay ISO-TP answers by their CAN frame time (0.25 ms per frame at 500 kbit/s)")
	fs.DurationVar(&c.tokenRotation, "token-rotation", 2*time.Minute, "period of openSessionTokenStream")
	fs.DurationVar(&c.tokenValidity, "token-validity", 5*time.Minute, "lifetime of each session token")
	fs.DurationVar(&c.controllerTokens, "controller-token-validity", 90*time.Minute, "lifetime of session-controller tokens")
	fs.DurationVar(&c.retention, "retention", 2*time.Minute, "how long ended sessions stay visible")
	fs.DurationVar(&c.infoPeriod, "info-period", time.Second, "period of openConnectorInformationStream")
	fs.StringVar(&c.interruptCode, "interrupt-code", "CANCELLED", "gRPC status code that ends the streams of an interrupted session")
	fs.IntVar(&c.routinePending, "routine-pending", 3, "0x78 answers before the result of routine 0xFF00")
	fs.DurationVar(&c.routineSpacing, "routine-pending-spacing", 200*time.Millisecond, "time between those 0x78 answers")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// applyEnv sets every flag not given on the command line from its
// environment twin.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" && !given[f.Name] {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	})
	return errors.Join(errs...)
}

// validate checks the configuration and returns the interrupt code.
func (c *config) validate() (codes.Code, error) {
	var errs []error
	for _, a := range []struct{ flag, addr string }{{"--openobd-addr", c.openobdAddr}, {"--partner-addr", c.partnerAddr}} {
		host, _, err := net.SplitHostPort(a.addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.flag, err))
			continue
		}
		if ip := net.ParseIP(host); !c.allowRemote && host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			errs = append(errs, fmt.Errorf("%s: %q is not a loopback address (see --allow-non-loopback)", a.flag, a.addr))
		}
	}
	if c.clientID == "" || c.clientSecret == "" {
		errs = append(errs, errors.New("--client-id and --client-secret must not be empty"))
	}
	switch {
	case c.tls && c.tlsCAFile == "":
		errs = append(errs, errors.New("--tls-ca-file: required with --tls (clients need the CA certificate)"))
	case !c.tls && c.tlsCAFile != "":
		errs = append(errs, errors.New("--tls-ca-file: only with --tls"))
	}
	if _, err := partnertest.ParseConnectorShape(c.connectorShape); err != nil {
		errs = append(errs, fmt.Errorf("--connector-shape: %w", err))
	}
	if c.tickets < 0 {
		errs = append(errs, errors.New("--tickets must not be negative"))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"--token-rotation", c.tokenRotation}, {"--token-validity", c.tokenValidity},
		{"--controller-token-validity", c.controllerTokens}, {"--retention", c.retention},
		{"--info-period", c.infoPeriod}, {"--routine-pending-spacing", c.routineSpacing},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", d.flag))
		}
	}
	if c.routinePending < 1 {
		errs = append(errs, errors.New("--routine-pending must be at least 1"))
	}
	var code codes.Code
	if err := code.UnmarshalJSON([]byte(strconv.Quote(strings.ToUpper(c.interruptCode)))); err != nil || code == codes.OK {
		errs = append(errs, fmt.Errorf("--interrupt-code: %q is not a gRPC status code name such as CANCELLED or UNAVAILABLE", c.interruptCode))
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format: %q is neither text nor json", c.logFormat))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level: %w", err))
	}
	return code, errors.Join(errs...)
}

func (c *config) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.logLevel))
	ho := &slog.HandlerOptions{Level: lvl}
	if c.logFormat == "json" {
		// Durations as "1.5s", not integer nanoseconds.
		ho.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return a
		}
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the process at once
	}()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run serves the fakes until ctx ends and returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if buildinfo.Requested(args) {
		fmt.Fprintln(stdout, buildinfo.Read().String("fakeconnector"))
		return 0
	}
	var c config
	fs := flag.NewFlagSet("fakeconnector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.addFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := applyEnv(fs, getenv); err != nil {
		fmt.Fprintf(stderr, "fakeconnector: %v\n", err)
		return 2
	}
	code, err := c.validate()
	if err != nil {
		fmt.Fprintf(stderr, "fakeconnector: %v\n", err)
		return 2
	}
	log := c.logger(stderr)

	shape, _ := partnertest.ParseConnectorShape(c.connectorShape) // validated above
	env, err := fakejifeline.Start(ctx, fakejifeline.Options{
		TLS:          c.tls,
		Partner:      partnertest.Options{ConnectorShape: shape},
		OpenOBDAddr:  c.openobdAddr,
		PartnerAddr:  c.partnerAddr,
		ClientID:     c.clientID,
		ClientSecret: c.clientSecret,
		Tickets:      c.tickets,
		Seed:         c.seed,
		OpenOBD: fake.Options{
			TokenRotation:           c.tokenRotation,
			TokenValidity:           c.tokenValidity,
			ControllerTokenValidity: c.controllerTokens,
			Retention:               c.retention,
			InfoPeriod:              c.infoPeriod,
			InterruptCode:           code,
			RoutinePending:          c.routinePending,
			RoutinePendingSpacing:   c.routineSpacing,
			BusTiming:               c.busTiming,
		},
		Logger: log,
	})
	if err != nil {
		log.Error("fake Jifeline did not start", "error", err)
		return 1
	}
	if env.Certificate != nil {
		if err := os.WriteFile(c.tlsCAFile, env.Certificate.CAPEM, 0o644); err != nil {
			log.Error("writing the CA certificate", "flag", "--tls-ca-file", "error", err)
			_ = env.Close()
			return 1
		}
	}
	printBanner(stdout, env, c.tlsCAFile)

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case <-env.Done():
	}
	if err := env.Close(); err != nil {
		log.Error("fake Jifeline failed", "error", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// printBanner tells where the fakes listen, the credentials and the demo
// tickets.
func printBanner(w io.Writer, env *fakejifeline.Env, caFile string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "fake Jifeline is running (Ctrl-C to stop)\n")
	if env.Certificate != nil {
		fmt.Fprintf(tw, "  openOBD gRPC\t%s (TLS, certificate for %s)\n", env.OpenOBDAddr, strings.Join(env.Certificate.Hosts, ", "))
		fmt.Fprintf(tw, "  openOBD CA certificate\t%s\n", caFile)
	} else {
		fmt.Fprintf(tw, "  openOBD gRPC\t%s (plaintext)\n", env.OpenOBDAddr)
	}
	fmt.Fprintf(tw, "  Partner API\t%s\n", env.PartnerURL)
	fmt.Fprintf(tw, "  openOBD steering\t%s\n", env.SteeringURL)
	fmt.Fprintf(tw, "  Partner steering\t%s/_fake/\n", env.PartnerURL)
	fmt.Fprintf(tw, "  client id\t%s\n", env.ClientID)
	fmt.Fprintf(tw, "  client secret\t%s\n", env.ClientSecret)
	_ = tw.Flush()
	if len(env.Tickets) == 0 {
		return
	}
	fmt.Fprintf(w, "demo tickets (pending):\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  ticket number\tticket id\tconnector\tVIN\n")
	for _, t := range env.Tickets {
		connector, vin := "-", "-"
		if t.CustomerConnectorID != nil {
			connector = *t.CustomerConnectorID
			if c, ok := env.Partner.LookupConnector(connector); ok && c.Name != "" {
				connector = c.Name + " (" + c.ID + ")"
			}
		}
		if t.VIN != nil {
			vin = *t.VIN
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", t.TicketNumber, t.ID, connector, vin)
	}
	_ = tw.Flush()
}
