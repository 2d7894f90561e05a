// Command obdctl is the operator's CLI for the orchestrator's control plane:
// tickets, connectors and sessions, start and watch them, acquire, send one
// UDS request, finish and interrupt.
//
//	obdctl sessions                       # the sessions, newest state first
//	obdctl start --ticket 7440303 --wait  # start and follow it until READY
//	obdctl send SESSION_ID 22F190         # read the VIN
//	obdctl sessions watch                 # follow every transition (Ctrl-C stops)
//
// Human output by default, -o json for scripts. Exit codes: 0 ok, 1 server
// or connection error, 2 usage error (or a request the server found
// invalid), 3 not found, 4 not allowed (token missing, unknown or too weak),
// 5 refused in the current state (e.g. the session has ended).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/obdorch/obdorch/cmd/internal/buildinfo"
	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
)

// Exit codes.
const (
	exitOK       = 0
	exitServer   = 1
	exitUsage    = 2
	exitNotFound = 3
	exitDenied   = 4
	exitRefused  = 5
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// globals are the connection and output options every command takes, before
// or after its name; each has an environment twin.
type globals struct {
	addr       string
	token      string
	useTLS     bool
	caCert     string
	clientCert string
	clientKey  string
	serverName string
	output     string
	timeout    time.Duration
}

var globalEnv = map[string]string{
	"addr": "OBDCTL_ADDR", "token": "OBDCTL_TOKEN", "tls": "OBDCTL_TLS", "ca-cert": "OBDCTL_CA_CERT",
	"client-cert": "OBDCTL_CLIENT_CERT", "client-key": "OBDCTL_CLIENT_KEY", "server-name": "OBDCTL_SERVER_NAME",
	"output": "OBDCTL_OUTPUT", "timeout": "OBDCTL_TIMEOUT",
}

func (g *globals) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&g.addr, "addr", "127.0.0.1:7600", "control-plane `host:port`")
	fs.StringVar(&g.token, "token", "", "bearer `token` (viewer, runner or admin)")
	fs.BoolVar(&g.useTLS, "tls", false, "connect with TLS (implied by --ca-cert or --client-cert)")
	fs.StringVar(&g.caCert, "ca-cert", "", "CA `file` (PEM) to verify the server; default the system's")
	fs.StringVar(&g.clientCert, "client-cert", "", "client certificate `file` (PEM) for mTLS")
	fs.StringVar(&g.clientKey, "client-key", "", "client key `file` (PEM) for mTLS")
	fs.StringVar(&g.serverName, "server-name", "", "TLS server `name` to verify, if not the host of --addr")
	fs.StringVar(&g.output, "o", "human", "output `format`: human or json")
	fs.StringVar(&g.output, "output", "human", "output `format`: human or json")
	fs.DurationVar(&g.timeout, "timeout", 30*time.Second, "time allowed for each call (not for watch or --wait)")
}

// usageError is a command-line mistake (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// env is the process environment, read once at the start.
type env struct {
	getenv         func(string) string
	stdout, stderr io.Writer
	g              globals
	client         orchestratorv1.OrchestratorServiceClient
	conn           *grpc.ClientConn
}

// command is one subcommand.
type command struct {
	name, args, summary string
	// flags registers the command's own flags; run runs it.
	flags func(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error
}

func commands() []command {
	return []command{
		{"tickets", "", "list the Partner API's tickets with their sessions", ticketsCmd},
		{"connectors", "", "list connectors and whether each is free", connectorsCmd},
		{"sessions", "[list|get ID|watch]", "list sessions, show one with its history, or follow transitions", sessionsCmd},
		{"start", "--ticket ID|--connector ID", "start a session (--wait follows it until READY, --dry-run checks only)", startCmd},
		{"acquire", "--runner NAME", "lease a READY session", acquireCmd},
		{"send", "SESSION_ID HEX", "send one UDS request, e.g. 22F190 (VIN), and decode the answer", sendCmd},
		{"configure", "SESSION_ID --bus DEF", "replace a session's buses (--dry-run checks only)", configureCmd},
		{"finish", "SESSION_ID --result CODE", "report a session's result and end it", finishCmd},
		{"interrupt", "SESSION_ID --reason TEXT", "stop a live session", interruptCmd},
		{"version", "", "print obdctl's version", versionCmd},
		{"completion", "bash", "print a bash completion script", completionCmd},
	}
}

// run is the whole program; it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if buildinfo.Requested(args) {
		fmt.Fprintln(stdout, buildinfo.Read().String("obdctl"))
		return exitOK
	}
	e := &env{getenv: getenv, stdout: stdout, stderr: stderr}
	err := e.dispatch(ctx, args)
	if e.conn != nil {
		e.conn.Close()
	}
	return e.exit(err)
}

func (e *env) exit(err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "obdctl: %v\n(obdctl --help for usage)\n", err)
		return exitUsage
	}
	st, ok := status.FromError(err)
	if !ok {
		fmt.Fprintf(e.stderr, "obdctl: %v\n", err)
		return exitServer
	}
	fmt.Fprintf(e.stderr, "obdctl: %s: %s\n", st.Code(), st.Message())
	switch st.Code() {
	case codes.InvalidArgument:
		return exitUsage
	case codes.NotFound:
		return exitNotFound
	case codes.Unauthenticated, codes.PermissionDenied:
		return exitDenied
	case codes.FailedPrecondition, codes.AlreadyExists, codes.Aborted, codes.OutOfRange:
		return exitRefused
	}
	return exitServer
}

func (e *env) dispatch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("obdctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	e.g.addFlags(fs)
	if err := e.applyEnv(fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			e.usage(fs)
			return err
		}
		return usagef("%v", err)
	}
	if fs.NArg() == 0 {
		e.usage(fs)
		return usagef("no command given")
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	if name == "help" {
		e.usage(fs)
		return nil
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		cfs := flag.NewFlagSet("obdctl "+c.name, flag.ContinueOnError)
		cfs.SetOutput(io.Discard)
		saved := e.g // registering resets the globals to their defaults
		e.g.addFlags(cfs)
		e.g = saved
		runCmd := c.flags(cfs)
		pos, err := parseInterspersed(cfs, rest)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(e.stdout, "Usage: obdctl %s %s [flags]\n\n%s.\n\nFlags:\n", c.name, c.args, strings.ToUpper(c.summary[:1])+c.summary[1:])
			cfs.SetOutput(e.stdout)
			cfs.PrintDefaults()
			return err
		}
		if err != nil {
			return usagef("%s: %v", c.name, err)
		}
		if e.g.output != "human" && e.g.output != "json" {
			return usagef("-o: want human or json, got %q", e.g.output)
		}
		if e.g.timeout <= 0 {
			return usagef("--timeout: must be positive, got %s", e.g.timeout)
		}
		return runCmd(ctx, e, pos)
	}
	return usagef("unknown command %q", name)
}

// parseInterspersed parses flags wherever they stand among the positional
// arguments, so "send ID 22F190 --ecu engine" works; "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// applyEnv sets each global flag from its environment twin; the command
// line wins.
func (e *env) applyEnv(fs *flag.FlagSet) error {
	names := make([]string, 0, len(globalEnv))
	for n := range globalEnv {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if v := e.getenv(globalEnv[n]); v != "" {
			if err := fs.Set(n, v); err != nil {
				return usagef("invalid %s=%q (flag --%s): %v", globalEnv[n], v, n, err)
			}
		}
	}
	return nil
}

func (e *env) usage(fs *flag.FlagSet) {
	w := e.stdout
	fmt.Fprintf(w, "Usage: obdctl [flags] COMMAND [ARGS] [flags]\n\nThe orchestrator's operator CLI, over its gRPC control plane.\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %-28s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(w, "\nFlags (before or after the command; environment twin in brackets):\n")
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "o" {
			return
		}
		arg, help := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s %s\n        %s", f.Name, arg, help)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintf(w, " [%s]\n", globalEnv[f.Name])
	})
	fmt.Fprintf(w, `  -o format
        short for --output

Exit codes: 0 ok, 1 server or connection error, 2 usage error or invalid
request, 3 not found, 4 not allowed (token), 5 refused in the current state.
"obdctl COMMAND --help" shows a command's flags.
`)
}

// dial connects to the control plane (lazily: grpc.NewClient does not
// block) and returns a context carrying the token.
func (e *env) dial(ctx context.Context) (context.Context, error) {
	creds := insecure.NewCredentials()
	if e.g.useTLS || e.g.caCert != "" || e.g.clientCert != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: e.g.serverName}
		if e.g.caCert != "" {
			pem, err := os.ReadFile(e.g.caCert)
			if err != nil {
				return nil, usagef("--ca-cert: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, usagef("--ca-cert %s: no PEM certificate found", e.g.caCert)
			}
			cfg.RootCAs = pool
		}
		if (e.g.clientCert == "") != (e.g.clientKey == "") {
			return nil, usagef("--client-cert and --client-key go together")
		}
		if e.g.clientCert != "" {
			cert, err := tls.LoadX509KeyPair(e.g.clientCert, e.g.clientKey)
			if err != nil {
				return nil, usagef("--client-cert/--client-key: %v", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		creds = credentials.NewTLS(cfg)
	}
	conn, err := grpc.NewClient(e.g.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, usagef("--addr %q: %v", e.g.addr, err)
	}
	e.conn = conn
	e.client = orchestratorv1.NewOrchestratorServiceClient(conn)
	if e.g.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+e.g.token)
	}
	return ctx, nil
}

// call bounds one unary call by --timeout.
func (e *env) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.g.timeout)
}
