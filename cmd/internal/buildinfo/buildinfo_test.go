package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	tests := []struct {
		name      string
		bi        debug.BuildInfo
		wantLine  string
		wantShort string
	}{
		{
			name:      "work tree without VCS stamp",
			bi:        debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Path: "m", Version: "(devel)"}},
			wantLine:  "obdctl (devel) go1.27.3",
			wantShort: "(devel)",
		},
		{
			name: "release with VCS stamp",
			bi: debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Path: "m", Version: "v1.2.0"}, Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "3f2a9c1d0e4b5a6978675645342312"},
				{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"},
				{Key: "vcs.modified", Value: "false"},
			}},
			wantLine:  "obdctl v1.2.0 (commit 3f2a9c1d0e4b, 2026-12-01T10:00:00Z) go1.27.3",
			wantShort: "v1.2.0+3f2a9c1d0e4b",
		},
		{
			name: "dirty pseudo-version naming its commit",
			bi: debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Path: "m", Version: "v0.0.0-20261201100000-3f2a9c1d0e4b+dirty"}, Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "3f2a9c1d0e4b5a6978675645342312"},
				{Key: "vcs.modified", Value: "true"},
			}},
			wantLine:  "obdctl v0.0.0-20261201100000-3f2a9c1d0e4b+dirty (commit 3f2a9c1d0e4b, modified) go1.27.3",
			wantShort: "v0.0.0-20261201100000-3f2a9c1d0e4b+dirty",
		},
		{
			name:      "empty version",
			bi:        debug.BuildInfo{GoVersion: "go1.27.3"},
			wantLine:  "obdctl (devel) go1.27.3",
			wantShort: "(devel)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := FromBuildInfo(&tt.bi)
			if got := info.String("obdctl"); got != tt.wantLine {
				t.Errorf("String = %q, want %q", got, tt.wantLine)
			}
			if got := info.Short(); got != tt.wantShort {
				t.Errorf("Short = %q, want %q", got, tt.wantShort)
			}
		})
	}
}

func TestReadNamesTheToolchain(t *testing.T) {
	info := Read()
	if !strings.HasPrefix(info.GoVersion, "go") || info.Version == "" {
		t.Errorf("Read() = %+v, want a Go version and a module version", info)
	}
}

func TestRequested(t *testing.T) {
	tests := []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"--version"}, true},
		{[]string{"-version"}, true},
		{[]string{"--demo", "--version"}, true},
		{[]string{"--", "--version"}, false},
		{[]string{"sessions", "--version"}, false},
		{[]string{"--versions"}, false},
	}
	for _, tt := range tests {
		if got := Requested(tt.args); got != tt.want {
			t.Errorf("Requested(%q) = %v, want %v", tt.args, got, tt.want)
		}
	}
}
