package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// exchanger performs one request and checks its response: nil means a
// matching response arrived.
type exchanger interface {
	exchange(ctx context.Context) error
}

// exchangeFunc is an exchanger made of a function.
type exchangeFunc func(ctx context.Context) error

func (f exchangeFunc) exchange(ctx context.Context) error { return f(ctx) }

// loadSpec describes one measured phase.
type loadSpec struct {
	// interval paces each worker: one request per interval, at offsets
	// spread evenly over the interval so the workers do not fire together.
	// Zero sends the next request as soon as the previous one is answered.
	interval time.Duration
	// warmup runs unmeasured before duration, the measured window.
	warmup, duration time.Duration
	// abort, if set, is called when the phase ends so that exchanges
	// blocked outside ctx (a stream's Recv) return.
	abort func()
}

// responseGrace is how long the last requests of a phase may take after
// its end before they count as lost.
const responseGrace = 5 * time.Second

// loadResult is what one phase measured.
type loadResult struct {
	hist histogram
	// all counts every exchange of the phase, warm-up included; lost those
	// that failed or did not match. A worker stops at its first loss.
	all, lost uint64
	duration  time.Duration
	// cpu is the process's CPU time over the whole phase (warm-up
	// included).
	cpu time.Duration
	// allocBytes is what the process allocated over the whole phase.
	allocBytes uint64
	firstErr   error
	// seconds is the measured window second by second, to tell steady
	// latency from bursts.
	seconds []secondStats
}

// secondStats is one second of a measured window.
type secondStats struct {
	count, slow uint64 // round trips, and those over slowThreshold
	max         time.Duration
}

// slowThreshold marks a round trip as slow in the per-second view.
const slowThreshold = time.Millisecond

func (s *secondStats) add(o secondStats) {
	s.count += o.count
	s.slow += o.slow
	s.max = max(s.max, o.max)
}

func (r *loadResult) rps() float64 { return float64(r.hist.count()) / r.duration.Seconds() }

// allocPerRequest is the bytes the process allocated per exchange.
func (r *loadResult) allocPerRequest() float64 {
	if r.all == 0 {
		return 0
	}
	return float64(r.allocBytes) / float64(r.all)
}

// cpuPerRequest is the process's CPU time per exchange.
func (r *loadResult) cpuPerRequest() time.Duration {
	if r.all == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.all)
}

type workerResult struct {
	hist      histogram
	all, lost uint64
	err       error
	seconds   []secondStats
}

// load runs one measured phase (see runLoad), profiled when asked, and logs
// it second by second at debug level.
func (r *runner) load(ctx context.Context, scenario, phase string, exs []exchanger, spec loadSpec) *loadResult {
	var l *loadResult
	r.profiled(scenario, phase, func() { l = runLoad(ctx, exs, spec) })
	if l.firstErr != nil {
		r.log.Warn("requests lost", "scenario", scenario, "phase", phase, "lost", l.lost, "first_error", l.firstErr)
	}
	r.logSeconds(phase, l)
	return l
}

// runLoad drives every exchanger on its own goroutine for spec.warmup plus
// spec.duration and returns the merged measurements. It returns when every
// worker has stopped.
func runLoad(ctx context.Context, exs []exchanger, spec loadSpec) *loadResult {
	start := time.Now()
	from := start.Add(spec.warmup)
	end := from.Add(spec.duration)
	ctx, cancel := context.WithDeadline(ctx, end.Add(responseGrace))
	defer cancel()
	if spec.abort != nil {
		stop := context.AfterFunc(ctx, spec.abort)
		defer stop()
	}
	results := make([]workerResult, len(exs))
	alloc0 := allocated()
	cpu0 := cpuTime()
	var wg sync.WaitGroup
	for i, ex := range exs {
		var offset time.Duration
		if spec.interval > 0 {
			offset = spec.interval * time.Duration(i) / time.Duration(len(exs))
		}
		wg.Go(func() { drive(ctx, ex, start.Add(offset), spec.interval, from, end, &results[i]) })
	}
	wg.Wait()
	out := &loadResult{duration: spec.duration, cpu: cpuTime() - cpu0, allocBytes: allocated() - alloc0}
	for i := range results {
		r := &results[i]
		out.hist.merge(&r.hist)
		for j, s := range r.seconds {
			if j == len(out.seconds) {
				out.seconds = append(out.seconds, secondStats{})
			}
			out.seconds[j].add(s)
		}
		out.all += r.all
		out.lost += r.lost
		if out.firstErr == nil {
			out.firstErr = r.err
		}
	}
	return out
}

// drive runs one worker: requests from first until end, recording the
// round trips that start at or after from.
func drive(ctx context.Context, ex exchanger, first time.Time, interval time.Duration, from, end time.Time, out *workerResult) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	next := first
	for {
		if d := time.Until(next); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		}
		t0 := time.Now()
		if !t0.Before(end) {
			return
		}
		err := ex.exchange(ctx)
		d := time.Since(t0)
		out.all++
		if err != nil {
			out.lost++
			out.err = err
			return
		}
		if !t0.Before(from) {
			out.hist.record(d)
			sec := int(t0.Sub(from) / time.Second)
			for len(out.seconds) <= sec {
				out.seconds = append(out.seconds, secondStats{})
			}
			s := &out.seconds[sec]
			s.count++
			s.max = max(s.max, d)
			if d > slowThreshold {
				s.slow++
			}
		}
		if interval > 0 {
			next = nextSlot(next, time.Now(), interval)
		}
	}
}

// nextSlot returns a worker's next slot after the one at prev: prev plus
// interval, or, when a slow answer made it miss that, the first slot of
// its grid (prev plus a whole number of intervals) not yet past. Missed
// slots are dropped, not caught up with a burst, and the worker keeps its
// offset: restarting from now instead would put every worker that waited
// out the same stall on the same instant, and they would go on sending in
// one burst per interval for the rest of the phase.
func nextSlot(prev, now time.Time, interval time.Duration) time.Time {
	next := prev.Add(interval)
	if late := now.Sub(next); late > 0 {
		next = next.Add((late + interval - 1) / interval * interval)
	}
	return next
}

// logSeconds logs a phase second by second at debug level.
func (r *runner) logSeconds(phase string, l *loadResult) {
	if !r.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	for i, s := range l.seconds {
		r.log.Debug("second", "phase", phase, "second", i, "round_trips", s.count,
			"over_1ms", s.slow, "max", s.max.Round(time.Microsecond))
	}
}

// parallel runs fn for 0..n-1 on at most width goroutines and returns the
// first error; the others still run to the end.
func parallel(n, width int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range min(n, width) {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

var errMismatch = errors.New("response does not match the request")
