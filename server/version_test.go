package main

import (
	"bytes"
	"errors"
	"os/exec"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

// runBinary runs the built server with args and returns its stdout, its
// stderr and its exit status.
func runBinary(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{} // nothing from WSPUSH_*
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	t.Fatalf("run %v: %v", args, err)
	return "", "", -1
}

// -h prints the usage to stdout and exits 0; a bad flag is still one line
// on stderr and status 2; -version prints one line to stdout and exits 0.
func TestHelpAndVersionGoToStdoutExit0(t *testing.T) {
	bin := buildServer(t)
	for _, arg := range []string{"-h", "-help", "--help"} {
		out, errOut, code := runBinary(t, bin, arg)
		if code != 0 || errOut != "" {
			t.Fatalf("%s: status %d, stderr %q; want 0 and nothing on stderr", arg, code, errOut)
		}
		if !strings.HasPrefix(out, "usage: wspush [flags]; every flag can also be set as WSPUSH_<FLAG>") ||
			!strings.Contains(out, "\n  -push-interval duration\n") || !strings.Contains(out, "\n  -version\n") {
			t.Fatalf("%s: stdout %q, want the usage with every flag", arg, out)
		}
	}

	out, errOut, code := runBinary(t, bin, "-no-such-flag")
	if code != 2 || out != "" || errOut != "wspush: flag provided but not defined: -no-such-flag\n" {
		t.Fatalf("bad flag: status %d, stdout %q, stderr %q; want 2, nothing, one line", code, out, errOut)
	}

	out, errOut, code = runBinary(t, bin, "-version")
	if code != 0 || errOut != "" || !regexp.MustCompile(`^wspush \S+ \(go[^)]+\)\n$`).MatchString(out) {
		t.Fatalf("-version: status %d, stdout %q, stderr %q; want 0 and one line \"wspush <version> (go…)\"", code, out, errOut)
	}
}

// -version is command line only: WSPUSH_VERSION in a service's environment
// must not make it print and exit.
func TestVersionNotFromEnvironment(t *testing.T) {
	var out bytes.Buffer
	getenv := func(k string) string {
		if k == "WSPUSH_VERSION" {
			return "true"
		}
		return ""
	}
	if _, err := parseConfig(nil, getenv, &out); err != nil || out.Len() != 0 {
		t.Fatalf("WSPUSH_VERSION=true: err %v, output %q; want a normal start", err, out.String())
	}
	out.Reset()
	if _, err := parseConfig([]string{"-version", "-push-interval", "1ms"}, getenv, &out); !errors.Is(err, errVersion) ||
		!strings.HasPrefix(out.String(), "wspush ") {
		t.Fatalf("-version: err %v, output %q; want errVersion and the version (before any validation)", err, out.String())
	}
}

func TestVersionOf(t *testing.T) {
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	const rev = "8e7c569413ec0123456789abcdef0123456789ab"
	for _, c := range []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"no build info", nil, false, "devel"},
		{"go test", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "wspush", Version: "(devel)"}}, true, "devel (go1.26.8)"},
		{"tagged", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}, Settings: settings("vcs.revision", rev)}, true, "v1.2.3 (go1.26.8)"},
		{"revision", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: settings("vcs", "git", "vcs.revision", rev, "vcs.modified", "false")}, true, "8e7c569413ec (go1.26.8)"},
		{"modified", &debug.BuildInfo{GoVersion: "go1.26.8", Settings: settings("vcs.revision", rev, "vcs.modified", "true")}, true, "8e7c569413ec-dirty (go1.26.8)"},
	} {
		if got := versionOf(c.bi, c.ok); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
