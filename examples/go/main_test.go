package main

import (
	"io"
	"reflect"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseECUs(t *testing.T) {
	got, err := parseECUs(defaultECUs)
	want := []ecu{{"engine", 0x7E0, 0x7E8}, {"transmission", 0x7E1, 0x7E9}, {"body", 0x7E2, 0x7EA}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parseECUs(default) = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"", "engine", "engine=0x7E0", "=0x7E0/0x7E8", "engine=x/0x7E8", "engine=0/0x7E8"} {
		if _, err := parseECUs(bad); err == nil {
			t.Errorf("parseECUs(%q) = nil error", bad)
		}
	}
}

func TestParseConfig(t *testing.T) {
	env := func(k string) string {
		if k == "ORCHESTRATOR_TOKEN" {
			return "secret-token-0123456789"
		}
		return ""
	}
	cfg, err := parseConfig([]string{"--addr", "h:1", "--ticket", "7440303"}, env, io.Discard)
	if err != nil || cfg.addr != "h:1" || cfg.ticket != "7440303" || cfg.token != "secret-token-0123456789" || len(cfg.ecus) != 3 {
		t.Fatalf("parseConfig = %+v, %v", cfg, err)
	}
	for _, args := range [][]string{{"--wait", "0s"}, {"--ecus", "x"}, {"--nope"}} {
		if _, err := parseConfig(args, env, io.Discard); err == nil {
			t.Errorf("parseConfig(%v) = nil error", args)
		}
	}
}
