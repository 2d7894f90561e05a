package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/obdorch/obdorch/cmd/loadtest/internal/results"
)

// meta is how the results were taken: metaFile in the results directory.
type meta struct {
	Commit string `json:"commit"`
	// Dirty is true when the work tree differed from the commit (outside
	// the results and BENCHMARKS.md).
	Dirty       bool      `json:"dirty"`
	Started     time.Time `json:"started"`
	WallSeconds float64   `json:"wall_seconds"`
	GoVersion   string    `json:"go_version"`
	CPUModel    string    `json:"cpu_model"`
	CPUs        int       `json:"cpus"`
	Kernel      string    `json:"kernel"`
	Runs        int       `json:"runs"`
	DurationS   float64   `json:"duration_s"`
	// Build are the commands that built the binaries the steps run.
	Build []string `json:"build"`
	Steps []step   `json:"steps"`
}

// step is one scenario configuration, run Runs times.
type step struct {
	Name string `json:"name"`
	// File holds its results.Result.
	File string `json:"file"`
	// Commands are what ran, in order, as a shell would show them.
	Commands []string `json:"commands"`
	Seconds  float64  `json:"seconds"`
	// Load is the 1-minute load average before and after the step: other
	// work on the machine shows here.
	LoadBefore float64 `json:"load_before"`
	LoadAfter  float64 `json:"load_after"`
}

const metaFile = "meta.json"

// Step names, also the stems of their result files.
const (
	stepRelayPaced   = "relay-paced"
	stepRelayUnpaced = "relay-unpaced"
	// stepRelayRate runs the three relay paths at one rate each of them
	// sustains: a path's CPU per request falls as its rate rises, and the
	// unpaced step compares each path at its own rate.
	stepRelayRate = "relay-rate"
	// stepRelayGC is the paced relay again with Go's default GC target
	// instead of the orchestrator's, to show what the target buys.
	stepRelayGC = "relay-paced-gogc100"
	// stepMemoryGC is the memory scenario again at Go's default GC target.
	stepMemoryGC     = "memory-gogc100"
	stepControlPlane = "controlplane"
	stepIntake       = "intake"
	stepMemory       = "memory"
	stepFailover     = "failover"
)

// measure builds the binaries and runs every step, writing the results and
// meta.json into cfg.dir.
func measure(ctx context.Context, cfg *config, log io.Writer) error {
	began := time.Now()
	if err := os.MkdirAll(cfg.dir, 0o755); err != nil {
		return err
	}
	bin, err := os.MkdirTemp("", "benchdoc-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	m := &meta{Started: began.UTC().Truncate(time.Second), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(),
		CPUModel: cpuModel(), Kernel: kernel(), Runs: cfg.runs, DurationS: cfg.duration.Seconds()}
	if m.Commit, m.Dirty, err = gitState(cfg); err != nil {
		return err
	}
	for _, b := range []string{"loadtest", "fakeconnector"} {
		args := []string{"build", "-o", filepath.Join(bin, b), "./cmd/" + b}
		m.Build = append(m.Build, "go build -o $BIN/"+b+" ./cmd/"+b)
		if err := command(ctx, log, "go", args...); err != nil {
			return fmt.Errorf("build %s: %w", b, err)
		}
	}
	loadtest := filepath.Join(bin, "loadtest")
	d := cfg.duration.String()
	common := []string{"--runs", strconv.Itoa(cfg.runs), "--log-level", "warn"}
	steps := []struct {
		name string
		args []string
	}{
		{stepRelayPaced, []string{"--scenario", "relay", "--sessions", "200", "--interval", "50ms", "--duration", d}},
		{stepRelayUnpaced, []string{"--scenario", "relay", "--sessions", "200", "--interval", "0", "--duration", d}},
		{stepRelayRate, []string{"--scenario", "relay", "--sessions", "200", "--interval", "10ms", "--duration", d}},
		{stepRelayGC, []string{"--scenario", "relay", "--sessions", "200", "--interval", "50ms", "--gc-percent", "100", "--duration", d}},
		{stepControlPlane, []string{"--scenario", "controlplane", "--sessions", "50", "--concurrency", "50", "--duration", d}},
		{stepIntake, []string{"--scenario", "intake", "--tickets", "1000"}},
		{stepFailover, []string{"--scenario", "failover", "--tickets", "30", "--sessions", "10", "--duration", d}},
	}
	for _, s := range steps {
		file := s.name + ".json"
		args := append(append(s.args, common...), "--out", filepath.Join(cfg.dir, file))
		st := step{Name: s.name, File: file, Commands: []string{"$BIN/loadtest " + strings.Join(args[:len(args)-2], " ") + " --out " + file}}
		err := timed(&st, func() error { return command(ctx, log, loadtest, args...) })
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		m.Steps = append(m.Steps, st)
	}
	for _, s := range []struct {
		name  string
		extra []string
	}{{stepMemory, nil}, {stepMemoryGC, []string{"--gc-percent", "100"}}} {
		st, err := measureMemory(ctx, cfg, log, bin, s.name, s.extra)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		m.Steps = append(m.Steps, st)
	}
	m.WallSeconds = time.Since(began).Seconds()
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "benchdoc: measured in %s\n", time.Since(began).Round(time.Second))
	return os.WriteFile(filepath.Join(cfg.dir, metaFile), append(b, '\n'), 0o644)
}

// memorySessions is the idle READY sessions of the memory step.
const memorySessions = 2000

// measureMemory runs the memory scenario cfg.runs times, each against a
// fresh fake in its own process (so that only the orchestrator's side of
// each session is measured), and merges the runs into one result.
func measureMemory(ctx context.Context, cfg *config, log io.Writer, bin, name string, extra []string) (step, error) {
	st := step{Name: name, File: name + ".json"}
	var raws []json.RawMessage
	var loadtestArgs []string
	err := timed(&st, func() error {
		for i := range cfg.runs {
			fake, err := startFake(ctx, log, filepath.Join(bin, "fakeconnector"), memorySessions)
			if err != nil {
				return err
			}
			out := filepath.Join(bin, fmt.Sprintf("%s-%d.json", name, i))
			loadtestArgs = append([]string{"--scenario", "memory", "--sessions", strconv.Itoa(memorySessions),
				"--openobd-addr", fake.openobdAddr, "--partner-url", fake.partnerURL, "--log-level", "warn"}, extra...)
			err = command(ctx, log, filepath.Join(bin, "loadtest"), append(loadtestArgs, "--out", out)...)
			fake.stop()
			if err != nil {
				return err
			}
			var res results.Result
			if err := readJSON(out, &res); err != nil {
				return err
			}
			raws = append(raws, res.Runs...)
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	st.Commands = []string{
		fmt.Sprintf("# %d times, each with a fresh fake:", cfg.runs),
		fmt.Sprintf("$BIN/fakeconnector --tickets %d --openobd-addr 127.0.0.1:17101 --partner-addr 127.0.0.1:17102 --log-level warn &", memorySessions),
		fmt.Sprintf("$BIN/loadtest --scenario memory --sessions %d --openobd-addr 127.0.0.1:17101 --partner-url http://127.0.0.1:17102 --log-level warn%s --out %s-N.json",
			memorySessions, strings.TrimRight(" "+strings.Join(extra, " "), " "), name),
		"kill %1",
	}
	res, err := results.NewResult("memory", append([]string{"loadtest"}, loadtestArgs...), raws)
	if err != nil {
		return st, err
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return st, err
	}
	return st, os.WriteFile(filepath.Join(cfg.dir, st.File), append(b, '\n'), 0o644)
}

// fakeProc is a cmd/fakeconnector process.
type fakeProc struct {
	cmd                     *exec.Cmd
	openobdAddr, partnerURL string
}

// startFake starts the fake with tickets pending tickets on free loopback
// ports and waits until its Partner API answers.
func startFake(ctx context.Context, log io.Writer, path string, tickets int) (*fakeProc, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	f := &fakeProc{openobdAddr: ports[0], partnerURL: "http://" + ports[1]}
	f.cmd = exec.Command(path, "--tickets", strconv.Itoa(tickets), "--openobd-addr", ports[0], "--partner-addr", ports[1], "--log-level", "warn")
	// Its stdout lists the demo world; only its warnings matter here.
	f.cmd.Stdout, f.cmd.Stderr = io.Discard, log
	if err := f.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.partnerURL+"/_fake/requests", nil)
		if err != nil {
			f.stop()
			return nil, err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return f, nil
			}
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			f.stop()
			return nil, fmt.Errorf("the fake at %s did not answer within 30 s", f.partnerURL)
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// stop ends the fake and waits for it.
func (f *fakeProc) stop() {
	_ = f.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		_ = f.cmd.Wait()
		close(done)
	}()
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		_ = f.cmd.Process.Kill()
		<-done
	}
}

// freePorts returns n loopback addresses whose ports were free a moment
// ago.
func freePorts(n int) ([]string, error) {
	var out []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// timed runs fn and records its time and the load around it in st.
func timed(st *step, fn func() error) error {
	st.LoadBefore = loadAverage()
	began := time.Now()
	err := fn()
	st.Seconds = time.Since(began).Seconds()
	st.LoadAfter = loadAverage()
	return err
}

// command runs name with args, its output going to log.
func command(ctx context.Context, log io.Writer, name string, args ...string) error {
	fmt.Fprintf(log, "benchdoc: %s %s\n", filepath.Base(name), strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	return cmd.Run()
}

// gitState returns the commit measured and whether the work tree differs
// from it outside the generated files.
func gitState(cfg *config) (commit string, dirty bool, err error) {
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "", false, fmt.Errorf("git rev-parse HEAD (run from the repository): %w", err)
	}
	commit = strings.TrimSpace(string(out))
	status, err := exec.Command("git", "status", "--porcelain", "--", ".",
		":(exclude)"+cfg.dir, ":(exclude)"+cfg.doc).Output()
	if err != nil {
		return "", false, fmt.Errorf("git status: %w", err)
	}
	return commit, len(bytes.TrimSpace(status)) > 0, nil
}

// loadAverage returns the 1-minute load average, 0 if unknown.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return "Linux " + strings.TrimSpace(string(b))
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

var errNoResults = errors.New("no results: run `benchdoc run` (make bench) first")
