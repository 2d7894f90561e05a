package main

import (
	"testing"
	"time"
)

func TestNextSlotKeepsTheWorkersGrid(t *testing.T) {
	const interval = 50 * time.Millisecond
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	offset := 7 * time.Millisecond // this worker's place in the interval
	prev := base.Add(offset)
	for _, tc := range []struct {
		name string
		now  time.Time // when the answer to the request at prev came
		want time.Time
	}{
		{"answered in time", prev.Add(time.Millisecond), prev.Add(interval)},
		{"answered exactly at the next slot", prev.Add(interval), prev.Add(interval)},
		{"one slot missed", prev.Add(interval + time.Millisecond), prev.Add(2 * interval)},
		{"a 154 ms stall", prev.Add(154 * time.Millisecond), prev.Add(4 * interval)},
		{"late by exactly two intervals", prev.Add(3 * interval), prev.Add(3 * interval)},
	} {
		got := nextSlot(prev, tc.now, interval)
		if !got.Equal(tc.want) {
			t.Errorf("%s: nextSlot = prev+%s, want prev+%s", tc.name, got.Sub(prev), tc.want.Sub(prev))
		}
		if got.Before(tc.now) {
			t.Errorf("%s: nextSlot is %s in the past", tc.name, tc.now.Sub(got))
		}
		if phase := got.Sub(base) % interval; phase != offset {
			t.Errorf("%s: next slot at offset %s in the interval, want the worker's %s", tc.name, phase, offset)
		}
	}
}
