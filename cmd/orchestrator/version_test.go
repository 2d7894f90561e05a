package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVersionFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"--version"}, func(string) string { return "" }, &stdout, &stderr); code != 0 {
		t.Fatalf("run(--version) = %d, want 0; stderr: %s", code, stderr.String())
	}
	if got := stdout.String(); !strings.HasPrefix(got, "orchestrator ") || !strings.Contains(got, " go1.") {
		t.Errorf("run(--version) printed %q, want \"orchestrator <version> go1.x\"", got)
	}
}
