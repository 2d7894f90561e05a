package gcpercent

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestSet(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Value
		wantErr bool
	}{
		{in: "400", want: 400},
		{in: "1", want: 1},
		{in: "off", want: -1},
		{in: "0", wantErr: true},
		{in: "-5", wantErr: true},
		{in: "fast", wantErr: true},
		{in: "", wantErr: true},
	} {
		var v Value
		err := v.Set(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("Set(%q) = nil error, want one", tc.in)
			}
			continue
		}
		if err != nil || v != tc.want {
			t.Errorf("Set(%q) = %v, %v; want %v", tc.in, v, err, tc.want)
		}
		if got := v.String(); got != tc.in {
			t.Errorf("String() after Set(%q) = %q", tc.in, got)
		}
	}
}

func TestFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if v, err := FromEnv(env(nil)); err != nil || v != Default {
		t.Errorf("FromEnv(no GOGC) = %v, %v; want %d", v, err, Default)
	}
	if v, err := FromEnv(env(map[string]string{"GOGC": "150"})); err != nil || v != 150 {
		t.Errorf("FromEnv(GOGC=150) = %v, %v; want 150", v, err)
	}
	if _, err := FromEnv(env(map[string]string{"GOGC": "lots"})); err == nil || !strings.Contains(err.Error(), "GOGC") {
		t.Errorf("FromEnv(GOGC=lots) error = %v, want one naming GOGC", err)
	}
}

func TestApplyRestores(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	restore := Value(250).Apply()
	if got := debug.SetGCPercent(250); got != 250 {
		t.Errorf("GC percent after Apply = %d, want 250", got)
	}
	restore()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent after restore = %d, want 100", got)
	}
}
