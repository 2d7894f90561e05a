package store_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
)

// reportRate adds operations per second to the benchmark's output.
func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkGet measures reading one record. It runs first, on a server not
// yet loaded by the other benchmarks.
func BenchmarkGet(b *testing.B) {
	s := openStore(b, testConfig(b, "bench"))
	ctx := testContext(b)
	if err := s.Create(ctx, newRecord("s1", "t1", "c1")); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Get(ctx, "s1"); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b)
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Get(ctx, "s1"); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportRate(b)
	})
}

// BenchmarkCreateUpdate measures a Create followed by an Update (PENDING to
// STARTING), one after the other and from many goroutines at once, on the
// shared server without fsync and on a server of its own with fsync.
func BenchmarkCreateUpdate(b *testing.B) {
	for _, fsync := range []bool{false, true} {
		eps, name := endpoints, "nofsync"
		if fsync {
			name = "fsync"
			eps = startEmbeddedConfig(b, store.EmbeddedConfig{Dir: b.TempDir(), Logger: testLogger()}).Endpoints()
		}
		b.Run(name, func(b *testing.B) {
			cfg := testConfig(b, "bench")
			cfg.Endpoints = eps
			s := openStore(b, cfg)
			ctx := testContext(b)
			var n atomic.Int64
			op := func() error {
				i := n.Add(1)
				rec := newRecord(fmt.Sprint("s", i), fmt.Sprint("t", i), "")
				if err := s.Create(ctx, rec); err != nil {
					return err
				}
				if err := rec.Transition(session.StateStarting, "bench", "", testTime); err != nil {
					return err
				}
				return s.Update(ctx, rec)
			}
			b.Run("serial", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := op(); err != nil {
						b.Fatal(err)
					}
				}
				reportRate(b)
			})
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(8)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := op(); err != nil {
							b.Error(err)
							return
						}
					}
				})
				reportRate(b)
			})
		})
	}
}
