package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// This file reads the repository's Dockerfile for docker_test.go and checks
// it the way a linter such as hadolint would, without a network or a
// container tool: the directives an operator relies on are there and say
// what the server needs.

// instr is one Dockerfile instruction: its keyword (upper case), the rest
// of the line (continuations joined) and the stage it belongs to.
type instr struct {
	cmd, args string
	stage     int
	line      int
}

// dockerfile is a parsed Dockerfile.
type dockerfile struct {
	instrs []instr
	stages []string // each stage's FROM arguments
}

// readDockerfile parses the Dockerfile at the repository's root.
func readDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatalf("the repository has no Dockerfile: %v", err)
	}
	d := &dockerfile{}
	stage := -1
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		start := i
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, `\`) + " " + strings.TrimSpace(lines[i])
		}
		cmd, args, _ := strings.Cut(l, " ")
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			stage++
			d.stages = append(d.stages, strings.TrimSpace(args))
		}
		d.instrs = append(d.instrs, instr{cmd: cmd, args: strings.TrimSpace(args), stage: stage, line: start + 1})
	}
	if len(d.stages) == 0 {
		t.Fatal("Dockerfile: no FROM")
	}
	return d
}

// repoRoot is the directory holding go.mod (the tests run in server/).
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("no go.mod in %s: %v", dir, err)
	}
	return dir
}

// final is the index of the last stage, the image.
func (d *dockerfile) final() int { return len(d.stages) - 1 }

// stageNamed returns the index of the stage "FROM … AS name".
func (d *dockerfile) stageNamed(t *testing.T, name string) int {
	t.Helper()
	for i, s := range d.stages {
		f := strings.Fields(s)
		if len(f) == 3 && strings.EqualFold(f[1], "AS") && f[2] == name {
			return i
		}
	}
	t.Fatalf("Dockerfile: no stage named %q (stages: %q)", name, d.stages)
	return -1
}

// all returns the arguments of every cmd instruction of a stage.
func (d *dockerfile) all(stage int, cmd string) []string {
	var out []string
	for _, in := range d.instrs {
		if in.stage == stage && in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// one returns the arguments of a stage's only cmd instruction.
func (d *dockerfile) one(t *testing.T, stage int, cmd string) string {
	t.Helper()
	a := d.all(stage, cmd)
	if len(a) != 1 {
		t.Fatalf("Dockerfile stage %d (%s): %d %s instructions, want exactly one", stage, d.stages[stage], len(a), cmd)
	}
	return a[0]
}

// env returns a stage's ENV settings (the KEY=VALUE form only).
func (d *dockerfile) env(t *testing.T, stage int) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, a := range d.all(stage, "ENV") {
		for _, kv := range strings.Fields(a) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("Dockerfile: ENV %q: use the KEY=VALUE form", a)
			}
			if uq, err := strconv.Unquote(v); err == nil {
				v = uq
			}
			env[k] = v
		}
	}
	return env
}

// execForm parses an instruction's JSON (exec) form; it fails the test on
// the shell form, which needs a shell the image does not have.
func execForm(t *testing.T, what, args string) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("Dockerfile: %s %s is not in exec form [\"…\", …] (the image has no shell): %v", what, args, err)
	}
	return argv
}

// healthcheckCmd is the HEALTHCHECK's command and its options.
func (d *dockerfile) healthcheckCmd(t *testing.T) (argv []string, opts string) {
	t.Helper()
	hc := d.one(t, d.final(), "HEALTHCHECK")
	opts, cmd, ok := strings.Cut(hc, "CMD ")
	if !ok {
		t.Fatalf("Dockerfile: HEALTHCHECK %s has no CMD", hc)
	}
	return execForm(t, "HEALTHCHECK CMD", strings.TrimSpace(cmd)), opts
}

// user is the final stage's USER as numeric uid and gid.
func (d *dockerfile) user(t *testing.T) (uid, gid int) {
	t.Helper()
	u := d.one(t, d.final(), "USER")
	us, gs, _ := strings.Cut(u, ":")
	uid, err1 := strconv.Atoi(us)
	gid, err2 := strconv.Atoi(cmpOr(gs, us))
	if err1 != nil || err2 != nil {
		t.Fatalf("Dockerfile: USER %q: want a numeric uid:gid (Kubernetes' runAsNonRoot cannot check a name)", u)
	}
	return uid, gid
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestDockerfileLint checks what hadolint and an operator would, offline:
// pinned, qualified bases; a Go builder matching go.mod; a static build;
// a distroless or scratch image; a numeric non-root USER; exec-form
// ENTRYPOINT and HEALTHCHECK through the binary itself; listen addresses on
// every interface with their ports EXPOSEd; the state directory a VOLUME
// owned by the user; STOPSIGNAL SIGTERM; no ADD, no cd, no package manager
// in the image; a .dockerignore that keeps .git and build output out.
func TestDockerfileLint(t *testing.T) {
	d := readDockerfile(t)
	root := repoRoot(t)
	if len(d.stages) < 2 {
		t.Fatalf("Dockerfile: %d stage(s), want a multi-stage build", len(d.stages))
	}
	for i, s := range d.stages {
		img := strings.Fields(s)[0]
		_, tag, hasTag := strings.Cut(img[strings.LastIndex(img, "/")+1:], ":")
		switch {
		case img == "scratch":
		case !hasTag || tag == "latest":
			t.Errorf("Dockerfile stage %d: FROM %s has no fixed tag (hadolint DL3006/DL3007)", i, img)
		case !strings.Contains(img, "/") || !strings.Contains(strings.Split(img, "/")[0], "."):
			t.Errorf("Dockerfile stage %d: FROM %s is not registry-qualified (podman and buildah refuse short names)", i, img)
		}
	}

	// The builder: Go of go.mod's version, cgo off.
	build := d.stageNamed(t, "build")
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goVer == nil || !strings.Contains(d.stages[build], "/golang:"+string(goVer[1])) {
		t.Errorf("Dockerfile: the build stage is FROM %s, want golang:%s (go.mod)", d.stages[build], goVer[1])
	}
	if env := d.env(t, build); env["CGO_ENABLED"] != "0" {
		t.Errorf("Dockerfile: the build stage sets CGO_ENABLED=%q, want 0 (a static binary for distroless/static)", env["CGO_ENABLED"])
	}
	if run := d.goBuild(t); !strings.Contains(run, "-trimpath") || !strings.Contains(run, "-X main.stamped=") {
		t.Errorf("Dockerfile: the go build %q lacks -trimpath or the version stamp -X main.stamped=", run)
	}

	// The image.
	fin := d.final()
	base := strings.Fields(d.stages[fin])[0]
	if base != "scratch" && !strings.HasPrefix(base, "gcr.io/distroless/static") {
		t.Errorf("Dockerfile: the image is FROM %s, want gcr.io/distroless/static… or scratch", base)
	}
	if uid, _ := d.user(t); uid == 0 {
		t.Error("Dockerfile: USER is root")
	}
	entry := execForm(t, "ENTRYPOINT", d.one(t, fin, "ENTRYPOINT"))
	hc, opts := d.healthcheckCmd(t)
	if hc[0] != entry[0] || !slices.Contains(hc, "-healthcheck") {
		t.Errorf("Dockerfile: HEALTHCHECK CMD %q, want the binary %s itself with -healthcheck (no shell or curl in the image)", hc, entry[0])
	}
	for _, o := range []string{"--interval=", "--timeout="} {
		if !strings.Contains(opts, o) {
			t.Errorf("Dockerfile: HEALTHCHECK without %s", o)
		}
	}
	if got := d.one(t, fin, "STOPSIGNAL"); got != "SIGTERM" {
		t.Errorf("Dockerfile: STOPSIGNAL %s, want SIGTERM (wspush drains on it)", got)
	}
	copied := false
	for _, c := range d.all(fin, "COPY") {
		f := strings.Fields(c)
		if len(f) >= 3 && f[0] == "--from=build" && f[len(f)-1] == entry[0] {
			copied = true
		}
	}
	if !copied {
		t.Errorf("Dockerfile: no COPY --from=build of the binary to %s", entry[0])
	}

	// Listen addresses: every interface, ports exposed; state in a volume.
	env := d.env(t, fin)
	exposed := strings.Fields(strings.Join(d.all(fin, "EXPOSE"), " "))
	for _, k := range []string{"WSPUSH_ADDR", "WSPUSH_ADMIN_ADDR"} {
		host, port, err := net.SplitHostPort(env[k])
		if err != nil {
			t.Errorf("Dockerfile: ENV %s=%q: %v", k, env[k], err)
			continue
		}
		if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
			t.Errorf("Dockerfile: ENV %s=%q does not listen on every interface: nothing outside the container reaches it", k, env[k])
		}
		if !slices.Contains(exposed, port) && !slices.Contains(exposed, port+"/tcp") {
			t.Errorf("Dockerfile: port %s of %s is not EXPOSEd (EXPOSE %q)", port, k, exposed)
		}
	}
	state := env["WSPUSH_STATE_DIR"]
	if state == "" {
		t.Error("Dockerfile: no ENV WSPUSH_STATE_DIR")
	} else {
		vols := d.all(fin, "VOLUME")
		if len(vols) != 1 || !slices.Contains(execForm(t, "VOLUME", vols[0]), state) {
			t.Errorf("Dockerfile: VOLUME %q, want [%q] (WSPUSH_STATE_DIR)", vols, state)
		}
		uid, gid := d.user(t)
		chown := fmt.Sprintf("--chown=%d:%d", uid, gid)
		owned := false
		for _, c := range d.all(fin, "COPY") {
			f := strings.Fields(c)
			if slices.Contains(f, chown) && f[len(f)-1] == state {
				owned = true
			}
		}
		if !owned {
			t.Errorf("Dockerfile: %s is not created %s: a fresh volume would be root's and the server could not write its state", state, chown)
		}
	}
	// Every WSPUSH_ variable must name a flag, or it is silently ignored.
	flags := flagNames(t)
	for k := range env {
		if name, ok := strings.CutPrefix(k, "WSPUSH_"); ok && !flags[strings.ToLower(strings.ReplaceAll(name, "_", "-"))] {
			t.Errorf("Dockerfile: ENV %s names no wspush flag", k)
		}
	}

	// Habits hadolint flags.
	for _, in := range d.instrs {
		switch {
		case in.cmd == "ADD":
			t.Errorf("Dockerfile:%d: ADD; use COPY (DL3020)", in.line)
		case in.cmd == "WORKDIR" && !strings.HasPrefix(in.args, "/"):
			t.Errorf("Dockerfile:%d: WORKDIR %s is relative (DL3000)", in.line, in.args)
		case in.cmd == "RUN" && regexp.MustCompile(`(^|&&|;)\s*(cd|sudo)\s`).MatchString(in.args):
			t.Errorf("Dockerfile:%d: cd or sudo in RUN (DL3003/DL3004)", in.line)
		case in.cmd == "RUN" && in.stage == fin:
			t.Errorf("Dockerfile:%d: RUN in the image stage: it has no shell", in.line)
		case in.cmd == "MAINTAINER":
			t.Errorf("Dockerfile:%d: MAINTAINER is deprecated (DL4000)", in.line)
		}
	}
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatalf("no .dockerignore: %v", err)
	}
	for _, want := range []string{".git", "bin"} {
		if !slices.Contains(strings.Fields(string(ignore)), want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}

// goBuild is the build stage's RUN instruction that runs go build.
func (d *dockerfile) goBuild(t *testing.T) string {
	t.Helper()
	build := d.stageNamed(t, "build")
	for _, r := range d.all(build, "RUN") {
		if strings.Contains(r, "go build ") {
			return r
		}
	}
	t.Fatal("Dockerfile: no RUN go build in the build stage")
	return ""
}

// flagNames is the set of wspush's flags.
func flagNames(t *testing.T) map[string]bool {
	t.Helper()
	var help strings.Builder
	if _, err := parseConfig([]string{"-h"}, func(string) string { return "" }, &help); err == nil {
		t.Fatal("-h did not stop parseConfig")
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(help.String(), -1) {
		names[m[1]] = true
	}
	return names
}
