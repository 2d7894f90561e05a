// Package buildinfo reports what a binary was built from, as the Go
// toolchain recorded it (runtime/debug.ReadBuildInfo): the module version,
// the VCS revision and time when the build stamped them, and the Go version.
// Every command prints it for --version; the orchestrator also reports it as
// OpenTelemetry's service.version and as a build_info metric.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Info describes one build. Fields the build did not record are empty.
type Info struct {
	// Module is the main module's path.
	Module string
	// Version is the main module's version: a release tag such as v1.2.0
	// for `go install module@version`, a pseudo-version or "(devel)" for a
	// build from a work tree.
	Version string
	// Revision and Time are the VCS commit and its time (vcs.revision,
	// vcs.time), when the build stamped them; Modified reports a dirty tree.
	Revision string
	Time     string
	Modified bool
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "(unknown)", GoVersion: runtime.Version()}
	}
	return FromBuildInfo(bi)
}

// FromBuildInfo extracts Info from a debug.BuildInfo.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	info := Info{Module: bi.Main.Path, Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if info.Version == "" {
		info.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// Short is the version as one token, for OpenTelemetry's service.version:
// the module version, followed by "+" and the first 12 characters of the
// revision when the version does not already name it (with ".dirty" for a
// modified tree).
func (i Info) Short() string {
	v := i.Version
	if i.Revision != "" {
		if rev := i.Revision[:min(12, len(i.Revision))]; !strings.Contains(v, rev) {
			v += "+" + rev
			if i.Modified {
				v += ".dirty"
			}
		}
	}
	return v
}

// String is the --version line of command name, e.g.
//
//	obdctl v1.2.0 (commit 3f2a9c1d0e4b, 2026-12-01T10:00:00Z) go1.27.3
func (i Info) String(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", name, i.Version)
	if i.Revision != "" {
		rev := i.Revision[:min(12, len(i.Revision))]
		fmt.Fprintf(&b, " (commit %s", rev)
		if i.Modified {
			b.WriteString(", modified")
		}
		if i.Time != "" {
			fmt.Fprintf(&b, ", %s", i.Time)
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, " %s", i.GoVersion)
	return b.String()
}

// Attributes are the labels of the build_info metric: version, revision,
// and go_version.
func (i Info) Attributes() map[string]string {
	return map[string]string{"version": i.Version, "revision": i.Revision, "go_version": i.GoVersion}
}

// Requested reports whether the command line asks for the version: a
// --version (or -version) flag before the first argument that is not a flag
// or a "--". Commands check it before parsing the rest, so --version works
// whatever else the command line or the environment holds.
func Requested(args []string) bool {
	for _, a := range args {
		switch {
		case a == "--version" || a == "-version":
			return true
		case a == "--" || !strings.HasPrefix(a, "-"):
			return false
		}
	}
	return false
}
