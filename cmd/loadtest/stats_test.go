package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsAreContiguous(t *testing.T) {
	// Every value maps into a bucket whose range holds it, and bucket
	// ranges follow each other without gaps up to the last one.
	next := uint64(0)
	for i := range histBuckets {
		low, width := bucketRange(i)
		if low != next {
			t.Fatalf("bucketRange(%d) starts at %d, want %d", i, low, next)
		}
		for _, v := range []uint64{low, low + width - 1} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, got, i)
			}
		}
		next = low + width
	}
	if got := bucketOf(1 << 62); got != histBuckets-1 {
		t.Errorf("bucketOf(2^62) = %d, want the last bucket %d", got, histBuckets-1)
	}
}

func TestBucketPrecision(t *testing.T) {
	for _, v := range []uint64{1, 127, 128, 1000, 12345, 999_999, 50_000_000, 3e9} {
		low, width := bucketRange(bucketOf(v))
		if width > 1 && float64(width)/float64(low) > 1.0/subBuckets {
			t.Errorf("bucket of %d is [%d, +%d): wider than 1/%d of its values", v, low, width, subBuckets)
		}
	}
}

func TestQuantilesMatchSortedValues(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h histogram
	values := make([]time.Duration, 20000)
	for i := range values {
		// Log-uniform from 10 µs to 100 ms, like round-trip latencies.
		d := time.Duration(10_000 * math.Pow(10, 4*r.Float64()))
		values[i] = d
		h.record(d)
	}
	slices.Sort(values)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		want := values[int(q*float64(len(values)))-1]
		if q == 1 {
			want = values[len(values)-1]
		}
		got := h.quantile(q)
		if diff := float64(got-want) / float64(want); diff > 0.01 || diff < -0.01 {
			t.Errorf("quantile(%v) = %v, want %v within 1%%", q, got, want)
		}
	}
	if h.count() != uint64(len(values)) {
		t.Errorf("count() = %d, want %d", h.count(), len(values))
	}
	if got, want := h.quantile(0), values[0]; got != want {
		t.Errorf("quantile(0) = %v, want the minimum %v", got, want)
	}
}

func TestMergeEqualsRecordingTogether(t *testing.T) {
	var a, b, all histogram
	for i := range 1000 {
		d := time.Duration(i*i) * time.Microsecond
		all.record(d)
		if i%3 == 0 {
			a.record(d)
		} else {
			b.record(d)
		}
	}
	var merged histogram
	merged.merge(&a)
	merged.merge(&b)
	merged.merge(&histogram{}) // empty: no effect
	if merged != all {
		t.Errorf("merge of two halves differs from recording all values: n %d/%d, min %v/%v, max %v/%v, sum %v/%v",
			merged.n, all.n, merged.min, all.min, merged.max, all.max, merged.sum, all.sum)
	}
}

func TestEmptyHistogram(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 || h.mean() != 0 || h.count() != 0 {
		t.Errorf("empty histogram: quantile %v, mean %v, count %d; want zeros", h.quantile(0.5), h.mean(), h.count())
	}
}
