package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram records durations in log-linear buckets, like an HDR histogram
// with two significant decimal digits: every power of two is split into
// subBuckets equal buckets, so a recorded value is off by at most 1/128
// (0.8 %). Memory is fixed (about 32 KiB) whatever the number of values and
// the length of the run. It is not safe for concurrent use: give each
// goroutine its own and merge them.
type histogram struct {
	counts   [histBuckets]uint64
	n        uint64
	sum      time.Duration
	min, max time.Duration
}

const (
	subBits    = 7
	subBuckets = 1 << subBits
	// maxShift caps the range at 2^(maxShift+subBits+1) ns, about 2^37 ns
	// (137 s); longer values land in the last bucket (max stays exact).
	maxShift    = 29
	histBuckets = (maxShift + 2) << subBits
)

// bucketOf returns the bucket of v nanoseconds: values below subBuckets
// have a bucket each; above, the bucket keeps the top subBits+1 bits.
func bucketOf(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	if shift > maxShift {
		return histBuckets - 1
	}
	return (shift+1)<<subBits + int(v>>shift) - subBuckets
}

// bucketRange returns the smallest value of bucket i and its width.
func bucketRange(i int) (low, width uint64) {
	if i < subBuckets {
		return uint64(i), 1
	}
	shift := i>>subBits - 1
	sub := uint64(i&(subBuckets-1)) + subBuckets
	return sub << shift, 1 << shift
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	h.sum += d
}

// merge adds the values of o to h.
func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// count returns how many values were recorded.
func (h *histogram) count() uint64 { return h.n }

// mean returns the exact mean, 0 when empty.
func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// quantile returns the value below which a fraction q (0..1) of the values
// fall: the middle of the bucket holding the value of rank ceil(q*n),
// clamped to the exact minimum and maximum, which q <= 0 and q >= 1 give.
// It returns 0 when empty.
func (h *histogram) quantile(q float64) time.Duration {
	switch {
	case h.n == 0:
		return 0
	case q <= 0:
		return h.min
	case q >= 1:
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			low, width := bucketRange(i)
			v := time.Duration(low + width/2)
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}

// ms converts a duration to milliseconds for reports.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ratio returns a/b, or 0 when b is 0 (a report shows 0 rather than NaN).
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
