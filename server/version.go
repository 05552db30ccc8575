package main

import (
	"errors"
	"runtime/debug"
)

// errVersion is what parseConfig returns once -version has printed the
// version: main exits 0.
var errVersion = errors.New("wspush: -version")

// buildVersion is the version -version prints, from the build info: the
// main module's version where the go command set one (a tag, or since Go
// 1.24 a pseudo-version naming the VCS revision, "+dirty" if the work tree
// had changes), else the VCS revision (12 hex digits, "-dirty" if
// modified), else "devel" (go test, -buildvcs=false, no VCS); then the Go
// version in parentheses.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if stamped != "" {
		if ok && bi != nil && bi.GoVersion != "" {
			return stamped + " (" + bi.GoVersion + ")"
		}
		return stamped
	}
	return versionOf(bi, ok)
}

// stamped, when a build sets it with -ldflags "-X main.stamped=v1.2.3",
// is the version instead of the build info's: the Dockerfile sets it, since
// a container build has no VCS to read.
var stamped string

// versionOf is buildVersion for given build info.
func versionOf(bi *debug.BuildInfo, ok bool) string {
	if !ok || bi == nil {
		return "devel"
	}
	v := "devel"
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	switch {
	case bi.Main.Version != "" && bi.Main.Version != "(devel)":
		v = bi.Main.Version
	case rev != "":
		v = rev[:min(12, len(rev))]
		if modified == "true" {
			v += "-dirty"
		}
	}
	if bi.GoVersion != "" {
		v += " (" + bi.GoVersion + ")"
	}
	return v
}
