// Command runner is the reference diagnostic runner: it acquires a READY
// session from the orchestrator, reads the VIN and the DTCs of each ECU of
// the vehicle, prints them and finishes the session with a result.
//
//	go run ./cmd/orchestrator --demo &         # from the repository root
//	go -C examples/go run . --addr 127.0.0.1:7600
//
// It imports only the SDK (github.com/obdorch/obdorch/sdk), in a module of
// its own, as a runner of yours would: copy this directory, drop the replace
// directives from go.mod, and require released versions of the SDK.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/obdorch/obdorch/sdk"
	"github.com/obdorch/obdorch/sdk/uds"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// ecu is one ECU to read: a name and its CAN ids.
type ecu struct {
	name         string
	request, rsp uint32
}

// defaultECUs is the demo vehicle's layout.
const defaultECUs = "engine=0x7E0/0x7E8,transmission=0x7E1/0x7E9,body=0x7E2/0x7EA"

type config struct {
	addr, token, name, ticket string
	useTLS                    bool
	wait                      time.Duration
	ecus                      []ecu
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("runner", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := &config{}
	var ecus string
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:7600", "orchestrator control-plane address")
	fs.StringVar(&cfg.name, "name", "reference-runner", "runner name recorded in the session's history")
	fs.StringVar(&cfg.ticket, "ticket", "", "only a session of this ticket (UUID or number)")
	fs.BoolVar(&cfg.useTLS, "tls", false, "connect over TLS (system roots) instead of plaintext")
	fs.DurationVar(&cfg.wait, "wait", 30*time.Second, "how long to wait for a READY session")
	fs.StringVar(&ecus, "ecus", defaultECUs, "ECUs to read: name=requestID/responseID,...")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	cfg.token = getenv("ORCHESTRATOR_TOKEN")
	if cfg.wait <= 0 {
		return nil, errors.New("--wait must be positive")
	}
	var err error
	if cfg.ecus, err = parseECUs(ecus); err != nil {
		return nil, fmt.Errorf("--ecus: %w", err)
	}
	return cfg, nil
}

// parseECUs reads "name=0x7E0/0x7E8,...".
func parseECUs(s string) ([]ecu, error) {
	var out []ecu
	for _, part := range strings.Split(s, ",") {
		name, ids, ok := strings.Cut(strings.TrimSpace(part), "=")
		req, rsp, ok2 := strings.Cut(ids, "/")
		if !ok || !ok2 || name == "" {
			return nil, fmt.Errorf("%q: want name=requestID/responseID", part)
		}
		r1, err1 := strconv.ParseUint(req, 0, 32)
		r2, err2 := strconv.ParseUint(rsp, 0, 32)
		if err1 != nil || err2 != nil || r1 == 0 || r2 == 0 {
			return nil, fmt.Errorf("%q: CAN ids must be numbers such as 0x7E0", part)
		}
		out = append(out, ecu{name: name, request: uint32(r1), rsp: uint32(r2)})
	}
	return out, nil
}

// run is the whole program; it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "runner: %v\n", err)
		return 2
	}
	opts := []sdk.Option{sdk.WithRunnerName(cfg.name)}
	if cfg.useTLS {
		opts = append(opts, sdk.WithTLS(nil))
	} else {
		opts = append(opts, sdk.WithInsecure())
	}
	if cfg.token != "" {
		opts = append(opts, sdk.WithBearerToken(cfg.token))
	}
	c, err := sdk.Dial(cfg.addr, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "runner: %v\n", err)
		return 1
	}
	defer c.Close()

	actx, cancel := context.WithTimeout(ctx, cfg.wait)
	s, err := c.Acquire(actx, sdk.AcquireOptions{TicketID: cfg.ticket})
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "runner: %v\n", err)
		return 1
	}
	info := s.Info()
	fmt.Fprintf(stdout, "session %s: ticket %s, connector %s, VIN %s\n", s.ID(), info.GetTicketNumber(), info.GetConnectorId(), info.GetVin())

	failures := 0
	for _, e := range cfg.ecus {
		if err := readECU(ctx, s, e, stdout); err != nil {
			failures++
			fmt.Fprintf(stdout, "%s: %v\n", e.name, err)
			if s.Err() != nil {
				break // the session is gone: nothing more to read or report
			}
		}
	}
	if err := s.Err(); err != nil {
		fmt.Fprintf(stderr, "runner: session lost: %v\n", err)
		return 1
	}
	result := sdk.Result{Codes: []sdk.ResultCode{sdk.ResultSuccess}, Feedback: sdk.FeedbackSuccess,
		Description: fmt.Sprintf("read VIN and DTCs of %d ECUs", len(cfg.ecus))}
	if failures > 0 {
		result = sdk.Result{Codes: []sdk.ResultCode{sdk.ResultCommunicationError}, Feedback: sdk.FeedbackFailure,
			Description: fmt.Sprintf("%d of %d ECUs could not be read", failures, len(cfg.ecus))}
	}
	rec, err := s.Finish(ctx, result)
	if err != nil {
		fmt.Fprintf(stderr, "runner: finish: %v\n", err)
		_ = s.Release(context.WithoutCancel(ctx))
		return 1
	}
	fmt.Fprintf(stdout, "session %s %s: %s\n", rec.GetId(), strings.TrimPrefix(rec.GetState().String(), "SESSION_STATE_"), result.Description)
	if failures > 0 {
		return 1
	}
	return 0
}

// readECU prints the VIN and every DTC with a status bit set of one ECU.
func readECU(ctx context.Context, s *sdk.Session, e ecu, w io.Writer) error {
	ch, err := s.Channel(ctx, sdk.ChannelSpec{RequestID: e.request, ResponseID: e.rsp})
	if err != nil {
		return err
	}
	defer ch.Close()
	vin, err := ch.ReadVIN(ctx)
	if err != nil {
		return fmt.Errorf("VIN: %w", err)
	}
	report, err := ch.ReadDTCsByStatus(ctx, uds.AnyStatus)
	if err != nil {
		return fmt.Errorf("DTCs: %w", err)
	}
	fmt.Fprintf(w, "%s (0x%X/0x%X): VIN %s, %d DTCs\n", e.name, e.request, e.rsp, vin, len(report.DTCs))
	for _, d := range report.DTCs {
		fmt.Fprintf(w, "  %s\n", d)
	}
	return nil
}
