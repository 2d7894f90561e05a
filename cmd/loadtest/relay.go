package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/obdorch/obdorch/cmd/internal/gcpercent"
	"github.com/obdorch/obdorch/connector"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
)

// The relay's request: ReadDataByIdentifier VIN to the engine ECU on can0.
var (
	readVIN     = []byte{0x22, 0xF1, 0x90}
	vinResponse = []byte{0x62, 0xF1, 0x90}
)

const (
	busName    = "can0"
	engineReq  = 0x7E0
	engineResp = 0x7E8
	// setupWidth bounds the concurrent calls that open sessions.
	setupWidth = 16
	// leaseTTL is the runners' lease; their traffic renews it, and a
	// running orchestrator returns the sessions to READY this long after
	// the run.
	leaseTTL = 30 * time.Second
)

// pathResult is one path of the relay comparison.
type pathResult struct {
	P50MS, P99MS, MaxMS float64
	RPS                 float64
	Lost                uint64
	CPUPerRequestUS     float64
	AllocPerRequestKiB  float64
}

func newPathResult(r *loadResult) pathResult {
	return pathResult{
		P50MS: ms(r.hist.quantile(0.50)), P99MS: ms(r.hist.quantile(0.99)), MaxMS: ms(r.hist.max),
		RPS: r.rps(), Lost: r.lost,
		CPUPerRequestUS:    float64(r.cpuPerRequest()) / float64(time.Microsecond),
		AllocPerRequestKiB: r.allocPerRequest() / 1024,
	}
}

// relayResult is the relay scenario's report; JSON keys are its contract.
type relayResult struct {
	Scenario   string  `json:"scenario"`
	Sessions   int     `json:"sessions"`
	IntervalMS float64 `json:"interval_ms"`
	DurationS  float64 `json:"duration_s"`
	BusTiming  bool    `json:"bus_timing"`
	OpenOBDTLS bool    `json:"openobd_tls"`
	// GCPercent is the process's GC target (GOGC), -1 for off.
	GCPercent int `json:"gc_percent"`
	// TargetRPS is what the pacing asks for (0 when unpaced).
	TargetRPS float64 `json:"target_rps"`

	// Per path: latency percentiles and maximum, answered requests per
	// second of the measured window, lost requests, and this process's CPU
	// time and heap allocation per request. Everything in the process
	// counts: the runner and, in-process, the orchestrator, etcd and fake.
	DirectP50MS             float64 `json:"direct_p50_ms"`
	DirectP99MS             float64 `json:"direct_p99_ms"`
	DirectMaxMS             float64 `json:"direct_max_ms"`
	DirectRPS               float64 `json:"direct_rps"`
	DirectLost              uint64  `json:"direct_lost"`
	DirectCPUPerReqUS       float64 `json:"direct_cpu_us_per_request"`
	DirectAllocKiB          float64 `json:"direct_alloc_kib_per_request"`
	OrchestratedP50MS       float64 `json:"orchestrated_p50_ms"`
	OrchestratedP99MS       float64 `json:"orchestrated_p99_ms"`
	OrchestratedMaxMS       float64 `json:"orchestrated_max_ms"`
	OrchestratedRPS         float64 `json:"orchestrated_rps"`
	OrchestratedLost        uint64  `json:"orchestrated_lost"`
	OrchestratedCPUPerReqUS float64 `json:"orchestrated_cpu_us_per_request"`
	OrchestratedAllocKiB    float64 `json:"orchestrated_alloc_kib_per_request"`
	BareHopP50MS            float64 `json:"bare_hop_p50_ms"`
	BareHopP99MS            float64 `json:"bare_hop_p99_ms"`
	BareHopMaxMS            float64 `json:"bare_hop_max_ms"`
	BareHopRPS              float64 `json:"bare_hop_rps"`
	BareHopLost             uint64  `json:"bare_hop_lost"`
	BareHopCPUPerReqUS      float64 `json:"bare_hop_cpu_us_per_request"`
	BareHopAllocKiB         float64 `json:"bare_hop_alloc_kib_per_request"`
	BareProxyP50MS          float64 `json:"bare_proxy_p50_ms"`
	BareProxyP99MS          float64 `json:"bare_proxy_p99_ms"`
	BareProxyMaxMS          float64 `json:"bare_proxy_max_ms"`
	BareProxyRPS            float64 `json:"bare_proxy_rps"`
	BareProxyLost           uint64  `json:"bare_proxy_lost"`
	BareProxyCPUPerReqUS    float64 `json:"bare_proxy_cpu_us_per_request"`
	BareProxyAllocKiB       float64 `json:"bare_proxy_alloc_kib_per_request"`

	AddedP50MS float64 `json:"added_p50_ms"`
	AddedP99MS float64 `json:"added_p99_ms"`
	// AddedP50OverBareHop is added_p50_ms / bare_hop_p50_ms.
	AddedP50OverBareHop float64 `json:"added_p50_over_bare_hop"`
	// ThroughputRatio is orchestrated_rps / direct_rps.
	ThroughputRatio float64 `json:"throughput_ratio"`
	// AddedCPUOverBareHop is the CPU an orchestrated request costs beyond
	// a direct one, in bare hops: (orchestrated - direct) / bare hop.
	AddedCPUOverBareHop float64 `json:"added_cpu_over_bare_hop"`
	// The same three figures for the bare proxy in place of the
	// orchestrator: what one more gRPC hop costs with no work of its own,
	// the floor under the orchestrator's. They carry no targets.
	BareProxyAddedP99MS          float64 `json:"bare_proxy_added_p99_ms"`
	BareProxyThroughputRatio     float64 `json:"bare_proxy_throughput_ratio"`
	BareProxyAddedCPUOverBareHop float64 `json:"bare_proxy_added_cpu_over_bare_hop"`
	// Curves are the latency distributions of the three paths: the
	// latency in ms at each percentile of Percentiles.
	Curves latencyCurves `json:"curves"`
	// Lost is the sum of the four paths' losses.
	Lost uint64 `json:"lost"`
	// AcquireSeconds is how long acquiring the sessions took.
	AcquireSeconds float64       `json:"acquire_s"`
	Targets        []targetCheck `json:"targets"`
}

func (r *relayResult) name() string      { return "relay" }
func (r *relayResult) lostCount() uint64 { return r.Lost }

func (r *relayResult) check(cfg *config) {
	smoke := shortRun(cfg.duration)
	smoke = unless(smoke, r.Sessions == 200, "set for 200 sessions")
	if cfg.interval > 0 {
		smoke = unless(smoke, cfg.interval == 50*time.Millisecond, "set for one request per 50 ms per session")
	}
	r.Targets = nil
	if cfg.interval > 0 {
		r.Targets = append(r.Targets,
			atMost("relay added p50 <= 0.25 ms", r.AddedP50MS, 0.25, "ms", true, smoke),
			atMost("relay added p99 <= 1 ms", r.AddedP99MS, 1, "ms", true, smoke),
			atMost("relay added p50 <= 2x bare hop p50", r.AddedP50OverBareHop, 2, "x", true, smoke))
	} else {
		r.Targets = append(r.Targets,
			atLeast("relay throughput unpaced >= 0.6x direct", r.ThroughputRatio, 0.6, "x", smoke))
	}
	r.Targets = append(r.Targets,
		atMost("relay CPU per request, orchestrated minus direct, <= 1.5x a bare hop's", r.AddedCPUOverBareHop, 1.5, "x", true, smoke),
		atMost("relay responses lost = 0", float64(r.Lost), 0, "", false, nil))
}

func (r *relayResult) printTable(w io.Writer) {
	pace := "unpaced"
	if r.IntervalMS > 0 {
		pace = fmt.Sprintf("one request every %s ms per session (%s req/s asked)", num(r.IntervalMS), num(r.TargetRPS))
	}
	timing := "off"
	if r.BusTiming {
		timing = "on (CAN 500 kbit/s)"
	}
	transport := "plaintext"
	if r.OpenOBDTLS {
		transport = "TLS"
	}
	fmt.Fprintf(w, "relay: %d sessions, %s, %s s measured per path, bus timing %s, openOBD over %s, GC target %s\n\n",
		r.Sessions, pace, num(r.DurationS), timing, transport, gcpercent.Value(r.GCPercent))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\tp50 ms\tp99 ms\tmax ms\treq/s\tCPU µs/req\talloc KiB/req\tlost\t")
	for _, p := range []struct {
		name                           string
		p50, p99, max, rps, cpu, alloc float64
		lost                           uint64
	}{
		{"direct", r.DirectP50MS, r.DirectP99MS, r.DirectMaxMS, r.DirectRPS, r.DirectCPUPerReqUS, r.DirectAllocKiB, r.DirectLost},
		{"orchestrated", r.OrchestratedP50MS, r.OrchestratedP99MS, r.OrchestratedMaxMS, r.OrchestratedRPS, r.OrchestratedCPUPerReqUS, r.OrchestratedAllocKiB, r.OrchestratedLost},
		{"bare hop", r.BareHopP50MS, r.BareHopP99MS, r.BareHopMaxMS, r.BareHopRPS, r.BareHopCPUPerReqUS, r.BareHopAllocKiB, r.BareHopLost},
		{"bare proxy", r.BareProxyP50MS, r.BareProxyP99MS, r.BareProxyMaxMS, r.BareProxyRPS, r.BareProxyCPUPerReqUS, r.BareProxyAllocKiB, r.BareProxyLost},
	} {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", p.name, num(p.p50), num(p.p99), num(p.max), num(p.rps), num(p.cpu), num(p.alloc), p.lost)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nadded by the orchestrator: p50 %s ms, p99 %s ms; added p50 / bare hop p50 = %s; throughput orchestrated/direct = %s\n",
		num(r.AddedP50MS), num(r.AddedP99MS), num(r.AddedP50OverBareHop), num(r.ThroughputRatio))
	fmt.Fprintf(w, "CPU per request beyond direct: %s bare hops\n", num(r.AddedCPUOverBareHop))
	fmt.Fprintf(w, "the bare proxy in the orchestrator's place (no targets): p99 added %s ms, throughput %s x direct, CPU beyond direct %s bare hops\n",
		num(r.BareProxyAddedP99MS), num(r.BareProxyThroughputRatio), num(r.BareProxyAddedCPUOverBareHop))
	fmt.Fprintf(w, "%d sessions acquired in %s s\n", r.Sessions, num(r.AcquireSeconds))
	printTargets(w, r.Targets)
}

// runRelay compares a runner's UDS round trips direct to the fake, through
// the bare proxy, through the orchestrator and over a bare gRPC hop, each
// phase alone on fresh sessions.
func (r *runner) runRelay(ctx context.Context) (*relayResult, error) {
	cfg, n := r.cfg, r.cfg.sessions
	fw, err := r.startFake(n, 2*n) // direct sessions for the direct and bare proxy paths
	if err != nil {
		return nil, err
	}
	defer fw.close()
	orch, err := r.prepareOrchestrator(ctx, fw)
	if err != nil {
		return nil, err
	}
	defer orch.close()
	orch.start()
	r.log.Info("waiting for READY sessions", "sessions", n)
	if err := orch.waitReady(ctx, n, readyTimeout(n)); err != nil {
		return nil, err
	}

	spec := loadSpec{interval: cfg.interval, warmup: cfg.warmup, duration: cfg.duration}
	res := &relayResult{
		Scenario: "relay", Sessions: n, IntervalMS: ms(cfg.interval), DurationS: cfg.duration.Seconds(),
		BusTiming: cfg.busTiming, OpenOBDTLS: cfg.openobdTLS || cfg.openobdCA != "", GCPercent: int(cfg.gcPercent),
	}
	if cfg.interval > 0 {
		res.TargetRPS = float64(n) / cfg.interval.Seconds()
	}

	r.log.Info("direct phase", "sessions", n, "interval", cfg.interval, "duration", cfg.duration)
	direct, err := r.directPhase(ctx, fw, n, spec)
	if err != nil {
		return nil, fmt.Errorf("direct path: %w", err)
	}
	r.log.Info("bare proxy phase", "sessions", n)
	proxied, err := r.bareProxyPhase(ctx, fw, n, spec)
	if err != nil {
		return nil, fmt.Errorf("bare proxy: %w", err)
	}
	r.log.Info("orchestrated phase", "sessions", n)
	orchestrated, acquire, err := r.orchestratedPhase(ctx, orch, n, spec)
	if err != nil {
		return nil, fmt.Errorf("orchestrated path: %w", err)
	}
	r.log.Info("bare hop phase", "streams", n)
	bare, err := r.bareHopPhase(ctx, n, spec)
	if err != nil {
		return nil, fmt.Errorf("bare hop: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.heapProfile("relay")

	d, o, b := newPathResult(direct), newPathResult(orchestrated), newPathResult(bare)
	res.DirectP50MS, res.DirectP99MS, res.DirectMaxMS, res.DirectRPS, res.DirectLost, res.DirectCPUPerReqUS = d.P50MS, d.P99MS, d.MaxMS, d.RPS, d.Lost, d.CPUPerRequestUS
	res.OrchestratedP50MS, res.OrchestratedP99MS, res.OrchestratedMaxMS, res.OrchestratedRPS, res.OrchestratedLost, res.OrchestratedCPUPerReqUS = o.P50MS, o.P99MS, o.MaxMS, o.RPS, o.Lost, o.CPUPerRequestUS
	res.BareHopP50MS, res.BareHopP99MS, res.BareHopMaxMS, res.BareHopRPS, res.BareHopLost, res.BareHopCPUPerReqUS = b.P50MS, b.P99MS, b.MaxMS, b.RPS, b.Lost, b.CPUPerRequestUS
	res.DirectAllocKiB, res.OrchestratedAllocKiB, res.BareHopAllocKiB = d.AllocPerRequestKiB, o.AllocPerRequestKiB, b.AllocPerRequestKiB
	p := newPathResult(proxied)
	res.BareProxyP50MS, res.BareProxyP99MS, res.BareProxyMaxMS, res.BareProxyRPS, res.BareProxyLost = p.P50MS, p.P99MS, p.MaxMS, p.RPS, p.Lost
	res.BareProxyCPUPerReqUS, res.BareProxyAllocKiB = p.CPUPerRequestUS, p.AllocPerRequestKiB
	res.BareProxyAddedP99MS = p.P99MS - d.P99MS
	res.BareProxyThroughputRatio = ratio(p.RPS, d.RPS)
	res.BareProxyAddedCPUOverBareHop = ratio(p.CPUPerRequestUS-d.CPUPerRequestUS, b.CPUPerRequestUS)
	res.AddedP50MS = o.P50MS - d.P50MS
	res.AddedP99MS = o.P99MS - d.P99MS
	res.AddedP50OverBareHop = ratio(res.AddedP50MS, b.P50MS)
	res.ThroughputRatio = ratio(o.RPS, d.RPS)
	res.AddedCPUOverBareHop = ratio(o.CPUPerRequestUS-d.CPUPerRequestUS, b.CPUPerRequestUS)
	res.Curves = latencyCurves{
		Percentiles:  curvePercentiles,
		Direct:       curve(&direct.hist),
		Orchestrated: curve(&orchestrated.hist),
		BareHop:      curve(&bare.hist),
	}
	res.Lost = d.Lost + o.Lost + b.Lost + p.Lost
	res.AcquireSeconds = acquire.Seconds()
	return res, nil
}

// directSession is a runner's session opened straight on the fake.
type directSession struct {
	sess *connector.Session
	ch   *connector.IsotpChannel
}

func (d *directSession) exchange(ctx context.Context) error {
	resp, err := d.ch.Request(ctx, readVIN)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(resp, vinResponse) {
		return fmt.Errorf("%w: got % X", errMismatch, head(resp))
	}
	return nil
}

// directPhase opens n sessions on the fake through the openOBD client as
// the orchestrator would (start, authenticate, configure can0, open the
// engine channel), drives them, and finishes them.
func (r *runner) directPhase(ctx context.Context, fw *fakeWorld, n int, spec loadSpec) (*loadResult, error) {
	targets, err := fw.directTargets(ctx, 0, n)
	if err != nil {
		return nil, err
	}
	oc, err := fw.openOBDClient(r.clog.With("component", "direct-runner"))
	if err != nil {
		return nil, err
	}
	defer oc.Close()
	return r.driveDirect(ctx, oc, targets, "direct", spec)
}

// bareProxyPhase is the direct phase through the bare proxy, on other
// sessions.
func (r *runner) bareProxyPhase(ctx context.Context, fw *fakeWorld, n int, spec loadSpec) (*loadResult, error) {
	targets, err := fw.directTargets(ctx, n, n)
	if err != nil {
		return nil, err
	}
	p, err := startProxy(fw.openobdAddr, fw.tlsConfig())
	if err != nil {
		return nil, err
	}
	defer p.close()
	for i := range targets {
		targets[i].endpoint = p.addr
	}
	oc, err := fw.openOBDClientAt(r.clog.With("component", "proxied-runner"), p.addr, true)
	if err != nil {
		return nil, err
	}
	defer oc.Close()
	return r.driveDirect(ctx, oc, targets, "bare proxy", spec)
}

// driveDirect opens a session on each target with oc, drives them as the
// phase and finishes them.
func (r *runner) driveDirect(ctx context.Context, oc *connector.Client, targets []target, phase string, spec loadSpec) (*loadResult, error) {
	n := len(targets)
	sessions := make([]*directSession, n)
	defer closeDirect(sessions, r.log)
	err := parallel(n, setupWidth, func(i int) error {
		s, err := openDirect(ctx, oc, targets[i], true)
		sessions[i] = s
		return err
	})
	if err != nil {
		return nil, err
	}
	exs := make([]exchanger, n)
	for i, s := range sessions {
		exs[i] = s
	}
	return r.load(ctx, "relay", phase, exs, spec), nil
}

// openDirect starts a session on t, attaches it and configures can0; with
// channel it also opens the engine's ISO-TP channel.
func openDirect(ctx context.Context, oc *connector.Client, t target, channel bool) (*directSession, error) {
	var (
		info connector.SessionInfo
		err  error
	)
	if t.ticket != "" {
		info, err = oc.StartSessionOnTicket(ctx, t.ticket)
	} else {
		info, err = oc.StartSessionOnConnector(ctx, t.connector)
	}
	if err != nil {
		return nil, err
	}
	if t.endpoint != "" {
		info.GRPCEndpoint = t.endpoint
	}
	sess, err := oc.Attach(ctx, info)
	if err != nil {
		return nil, err
	}
	d := &directSession{sess: sess}
	if err := sess.ConfigureBus(ctx, defaultBus()); err != nil {
		return d, err
	}
	if channel {
		d.ch, err = sess.OpenIsotp(ctx, connector.Channel{Bus: busName, RequestID: engineReq, ResponseID: engineResp})
	}
	return d, err
}

// defaultBus is the bus the orchestrator configures on every session:
// CAN 500 kbit/s, ISO-TP, pins 6 and 14.
func defaultBus() connector.Bus {
	return connector.Bus{Name: busName, CAN: &connector.CANBus{PinPlus: 6, PinMinus: 14, BitRate: 500000}}
}

// closeDirect finishes the sessions on the fake (so a running fake can
// start sessions on their targets again) and closes them.
func closeDirect(sessions []*directSession, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	result := connector.ServiceResult{Codes: []int32{int32(openobdv1.Result_RESULT_SUCCESS)}}
	err := parallel(len(sessions), setupWidth, func(i int) error {
		s := sessions[i]
		if s == nil {
			return nil
		}
		if s.ch != nil {
			_ = s.ch.Close()
		}
		err := s.sess.Finish(ctx, result)
		_ = s.sess.Close()
		return err
	})
	if err != nil {
		log.Warn("finishing direct sessions failed", "err", err)
	}
}

// relayStream is a runner's Exchange stream through the orchestrator.
type relayStream struct {
	stream grpc.BidiStreamingClient[orchestratorv1.ExchangeRequest, orchestratorv1.ExchangeResponse]
	msg    *orchestratorv1.ExchangeRequest
	req    *orchestratorv1.UdsRequest
	seq    uint64
}

func (s *relayStream) exchange(context.Context) error {
	s.seq++
	s.req.CorrelationId = s.seq
	if err := s.stream.Send(s.msg); err != nil {
		return err
	}
	m, err := s.stream.Recv()
	if err != nil {
		return err
	}
	resp := m.GetResponse()
	switch {
	case resp == nil:
		return fmt.Errorf("%w: a message other than a response", errMismatch)
	case resp.GetCorrelationId() != s.seq:
		return fmt.Errorf("%w: correlation id %d, want %d", errMismatch, resp.GetCorrelationId(), s.seq)
	case resp.GetError() != nil:
		return fmt.Errorf("request %d failed: %s: %s", s.seq, resp.GetError().GetCode(), resp.GetError().GetMessage())
	case !bytes.HasPrefix(resp.GetPayload(), vinResponse):
		return fmt.Errorf("%w: got % X", errMismatch, head(resp.GetPayload()))
	}
	return nil
}

// orchestratedPhase acquires n READY sessions, opens an Exchange stream on
// each and drives them. It also returns how long acquiring took.
func (r *runner) orchestratedPhase(ctx context.Context, orch *orchestratorProc, n int, spec loadSpec) (*loadResult, time.Duration, error) {
	began := time.Now()
	leases := make([]*orchestratorv1.AcquireSessionResponse, n)
	err := parallel(n, setupWidth, func(i int) error {
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var err error
		leases[i], err = orch.api.AcquireSession(actx, &orchestratorv1.AcquireSessionRequest{
			Runner: fmt.Sprintf("loadtest-%d", i), LeaseTtl: durationpb.New(leaseTTL),
		})
		return err
	})
	acquire := time.Since(began)
	if err != nil {
		return nil, acquire, fmt.Errorf("AcquireSession: %w", err)
	}
	r.log.Info("sessions acquired", "sessions", n, "took", acquire.Round(time.Millisecond))

	sctx, cancelStreams := context.WithCancel(ctx)
	defer cancelStreams()
	exs := make([]exchanger, n)
	err = parallel(n, setupWidth, func(i int) error {
		stream, err := orch.api.Exchange(sctx)
		if err != nil {
			return err
		}
		err = stream.Send(&orchestratorv1.ExchangeRequest{Kind: &orchestratorv1.ExchangeRequest_Open{Open: &orchestratorv1.OpenChannel{
			SessionId: leases[i].GetSession().GetId(), LeaseId: leases[i].GetLeaseId(),
			Channel: &orchestratorv1.Channel{BusName: busName, RequestId: engineReq, ResponseId: engineResp},
		}}})
		if err != nil {
			return err
		}
		m, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("open channel: %w", err)
		}
		if m.GetOpened() == nil {
			return fmt.Errorf("open channel: %w: the first message is not ChannelOpened", errMismatch)
		}
		req := &orchestratorv1.UdsRequest{Payload: readVIN}
		exs[i] = &relayStream{stream: stream, req: req,
			msg: &orchestratorv1.ExchangeRequest{Kind: &orchestratorv1.ExchangeRequest_Request{Request: req}}}
		return nil
	})
	if err != nil {
		return nil, acquire, err
	}
	spec.abort = cancelStreams
	return r.load(ctx, "relay", "orchestrated", exs, spec), acquire, nil
}

// bareHopPhase drives n echo streams on a bare gRPC server, paced like
// the sessions.
func (r *runner) bareHopPhase(ctx context.Context, n int, spec loadSpec) (*loadResult, error) {
	echo, err := startEcho()
	if err != nil {
		return nil, err
	}
	defer echo.close()
	sctx, cancelStreams := context.WithCancel(ctx)
	defer cancelStreams()
	exs := make([]exchanger, n)
	for i := range exs {
		if exs[i], err = echo.stream(sctx, readVIN); err != nil {
			return nil, err
		}
	}
	spec.abort = cancelStreams
	return r.load(ctx, "relay", "bare hop", exs, spec), nil
}

// latencyCurves are the latency percentiles of the relay's three paths.
type latencyCurves struct {
	Percentiles  []float64 `json:"percentiles"`
	Direct       []float64 `json:"direct_ms"`
	Orchestrated []float64 `json:"orchestrated_ms"`
	BareHop      []float64 `json:"bare_hop_ms"`
}

// curvePercentiles are where the curves are read: dense in the tail, up to
// 99.99 (a 10 s window at 4,000 requests/s holds 40,000 round trips per
// path, so 99.99 still rests on 4 of them).
var curvePercentiles = []float64{1, 5, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 96, 97, 97.5, 98, 98.5, 99, 99.25, 99.5, 99.75, 99.9, 99.95, 99.99}

// curve reads h at curvePercentiles, in ms.
func curve(h *histogram) []float64 {
	out := make([]float64, len(curvePercentiles))
	for i, p := range curvePercentiles {
		out[i] = ms(h.quantile(p / 100))
	}
	return out
}

// head returns at most the first 8 bytes of b, for error messages.
func head(b []byte) []byte { return b[:min(len(b), 8)] }
