package main

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestContainerLayout runs wspush the way the Dockerfile's image would,
// without a container tool (none that can pull the base images works
// here): the binary built by the build stage's own go build command and
// environment, checked to be static; started as the image's USER with the
// image's ENV (addresses on every interface, the state directory) and the
// admin token an operator must pass; the HEALTHCHECK command run until it
// says healthy; a client connected; then the STOPSIGNAL sent, the client
// drained with 1001 and the process exiting 0. Everything it uses is read
// from the Dockerfile, so a change there that breaks the image breaks this.
func TestContainerLayout(t *testing.T) {
	d := readDockerfile(t)
	root := repoRoot(t)
	fin := d.final()

	// A directory every user can enter, for the binary and the state.
	dir, err := os.MkdirTemp("", "wspush-image-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	// The build stage, run as docker would: its COPY instructions fill a
	// work directory from the repository as the build context (without
	// what .dockerignore leaves out), then its RUN instructions run there
	// with its ENV on top of ours and /out mapped to dir.
	const version = "v0.0.0-imagetest"
	build := d.stageNamed(t, "build")
	work := filepath.Join(dir, "src")
	buildContext(t, d, build, root, work)
	for _, run := range d.all(build, "RUN") {
		cmd := exec.Command("sh", "-c", strings.ReplaceAll(run, "/out/", dir+"/"))
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "VERSION="+version)
		for k, v := range d.env(t, build) {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("the build stage's RUN %s: %v\n%s", run, err, out)
		}
	}
	if !strings.Contains(d.goBuild(t), "-o /out/wspush ") {
		t.Fatalf("Dockerfile: the go build %q does not write /out/wspush", d.goBuild(t))
	}
	bin := filepath.Join(dir, "wspush")
	checkStatic(t, bin)

	entry := execForm(t, "ENTRYPOINT", d.one(t, fin, "ENTRYPOINT"))
	image := func(argv []string) []string { // the image's paths to ours
		out := append([]string(nil), argv...)
		if out[0] == entry[0] {
			out[0] = bin
		}
		return out
	}
	if out, err := exec.Command(image(entry)[0], "-version").Output(); err != nil ||
		!strings.HasPrefix(string(out), "wspush "+version+" (go") {
		t.Fatalf("-version of the image's binary: %q, %v; want the stamped %s", out, err, version)
	}

	// The image's environment: its ENV with free ports on the same hosts
	// and the state directory under dir, and the admin token the operator
	// passes with -e (the admin listener is not loopback).
	uid, gid := d.user(t)
	env := d.env(t, fin)
	state := filepath.Join(dir, "volume") // the image's state directory, empty
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	var ports [2]string
	free := freeAddrs(t, "0.0.0.0", 2)
	for i, k := range []string{"WSPUSH_ADDR", "WSPUSH_ADMIN_ADDR"} {
		host, _, err := net.SplitHostPort(env[k])
		if err != nil {
			t.Fatalf("Dockerfile: ENV %s=%q: %v", k, env[k], err)
		}
		_, ports[i], _ = net.SplitHostPort(free[i])
		env[k] = net.JoinHostPort(host, ports[i])
	}
	env["WSPUSH_STATE_DIR"] = state
	asUser := func(cmd *exec.Cmd, extra ...string) {
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Env = append(cmd.Env, extra...)
		if os.Geteuid() == 0 { // as the image's USER; otherwise we are not root already
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		}
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(state, uid, gid); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Logf("not root: running as uid %d instead of the image's %d", os.Geteuid(), uid)
	}

	// Without the token the server refuses to start, saying why.
	var stderr bytes.Buffer
	noToken := exec.Command(bin)
	asUser(noToken)
	noToken.Stderr = &stderr
	if err := noToken.Run(); exitCode(err) != 2 || !strings.Contains(stderr.String(), "set -admin-token (or WSPUSH_ADMIN_TOKEN)") {
		t.Fatalf("started without WSPUSH_ADMIN_TOKEN: %v, stderr %q; want status 2 asking for the token", err, stderr.String())
	}

	stderr.Reset()
	srv := exec.Command(image(entry)[0], "-push-interval", "100ms") // docker run IMAGE -push-interval 100ms
	asUser(srv, "WSPUSH_ADMIN_TOKEN=image-test-token")
	srv.Stderr = &stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed once srv ended, with waitErr set
	var waitErr error
	go func() { waitErr = srv.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			_ = srv.Process.Kill()
			<-exited
		}
	}()

	// The HEALTHCHECK, as docker runs it in the container: healthy once up.
	hcArgv, _ := d.healthcheckCmd(t)
	health := func() (int, string) {
		cmd := exec.Command(image(hcArgv)[0], image(hcArgv)[1:]...)
		asUser(cmd)
		out, err := cmd.CombinedOutput()
		return exitCode(err), string(out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out := health()
		if code == 0 && strings.Contains(out, `"status": "ok"`) {
			t.Logf("HEALTHCHECK %q: exit 0, %s", hcArgv, strings.TrimSpace(out))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("HEALTHCHECK %q: exit %d, %q after 10s; server stderr:\n%s", hcArgv, code, out, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A client, as from outside the container.
	c := dial(t, "ws://127.0.0.1:"+ports[0]+"/ws")
	if w := next(t, c, 3*time.Second); w.Type != "welcome" {
		t.Fatalf("first frame %+v, want a welcome", w)
	}
	if m := next(t, c, 3*time.Second); m.Type != "tick" {
		t.Fatalf("second frame %+v, want a tick", m)
	}

	// A publish through the admin listener, with the token, so that there
	// is topic state to save in the volume.
	req, _ := http.NewRequest("POST", "http://127.0.0.1:"+ports[1]+"/v1/publish", strings.NewReader(`{"topic":"image","data":1}`))
	req.Header.Set("Authorization", "Bearer image-test-token")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("publish with the admin token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// docker stop: the STOPSIGNAL, a drain, exit 0.
	sigName := d.one(t, fin, "STOPSIGNAL")
	sig, ok := map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT}[sigName]
	if !ok {
		t.Fatalf("Dockerfile: STOPSIGNAL %s: wspush drains only on SIGTERM or SIGINT", sigName)
	}
	begin := time.Now()
	if err := srv.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	if code, reason := closeCode(t, c, 5*time.Second); code != websocket.CloseGoingAway || reason != "server shutting down" {
		t.Fatalf("after %s the client got close %d %q, want 1001 \"server shutting down\"", sigName, code, reason)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("after %s: %v; stderr:\n%s", sigName, waitErr, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after %s; stderr:\n%s", sigName, stderr.String())
	}
	if !strings.Contains(stderr.String(), "msg=stopped") {
		t.Errorf("no \"stopped\" in the log:\n%s", stderr.String())
	}
	t.Logf("%s: drained and exited 0 in %v", sigName, time.Since(begin).Round(time.Millisecond))
	// The state went to the volume, written as the image's user.
	saved, _ := os.ReadDir(state)
	if len(saved) == 0 {
		t.Errorf("nothing saved in the state directory (WSPUSH_STATE_DIR); stderr:\n%s", stderr.String())
	}
	for _, e := range saved {
		if fi, err := e.Info(); err == nil && os.Geteuid() == 0 && fi.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
			t.Errorf("%s in the state directory belongs to uid %d, want the image's %d", e.Name(), fi.Sys().(*syscall.Stat_t).Uid, uid)
		}
	}
	if code, out := health(); code != 1 {
		t.Errorf("HEALTHCHECK with the server gone: exit %d (%q), want 1", code, out)
	}
}

// checkStatic fails the test unless bin is a static executable built with
// cgo off and -trimpath.
func checkStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter (PT_INTERP): not static", bin)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs shared libraries %q", bin, libs)
	}
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("build settings CGO_ENABLED=%q -trimpath=%q, want 0 and true", settings["CGO_ENABLED"], settings["-trimpath"])
	}
}

// exitCode is a finished command's exit status (-1 if it did not run).
func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return -1
}

// buildContext copies into work what a stage's COPY instructions (those
// without --from) take from the build context root, leaving out what
// .dockerignore excludes, as docker build would: a file source lands in
// the destination directory, a directory source's contents in it.
func buildContext(t *testing.T, d *dockerfile, stage int, root, work string) {
	t.Helper()
	ignore := dockerignore(t, root)
	for _, c := range d.all(stage, "COPY") {
		var args []string
		for _, f := range strings.Fields(c) {
			if strings.HasPrefix(f, "--from=") {
				args = nil
				break
			}
			if !strings.HasPrefix(f, "--") {
				args = append(args, f)
			}
		}
		if len(args) < 2 {
			continue
		}
		dest := filepath.Join(work, args[len(args)-1])
		for _, src := range args[:len(args)-1] {
			src = filepath.Clean(src)
			err := filepath.WalkDir(filepath.Join(root, src), func(path string, e os.DirEntry, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(root, path)
				if ignore(filepath.ToSlash(rel)) {
					if e.IsDir() {
						return filepath.SkipDir
					}
					return nil
				}
				inSrc, _ := filepath.Rel(filepath.Join(root, src), path)
				target := filepath.Join(dest, inSrc)
				if inSrc == "." && !e.IsDir() {
					target = filepath.Join(dest, e.Name())
				}
				if e.IsDir() {
					return os.MkdirAll(target, 0o755)
				}
				if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
					return err
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				return os.WriteFile(target, b, 0o644)
			})
			if err != nil {
				t.Fatalf("Dockerfile: COPY %s: %v", c, err)
			}
		}
	}
}

// dockerignore returns whether .dockerignore excludes a context path
// (slash-separated, relative): the last pattern that matches the path or
// one of its parent directories decides, "!" re-includes, and "**/" matches
// any number of directories.
func dockerignore(t *testing.T, root string) func(string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatalf("no .dockerignore: %v", err)
	}
	var patterns []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, strings.TrimPrefix(l, "/"))
		}
	}
	match := func(pattern, path string) bool {
		for {
			if ok, _ := filepath.Match(pattern, path); ok {
				return true
			}
			rest, ok := strings.CutPrefix(pattern, "**/")
			if !ok {
				return false
			}
			if ok, _ := filepath.Match(rest, path); ok {
				return true
			}
			_, path, ok = strings.Cut(path, "/")
			if !ok {
				return false
			}
		}
	}
	return func(path string) bool {
		excluded := false
		for _, p := range patterns {
			neg := strings.HasPrefix(p, "!")
			p = strings.TrimPrefix(p, "!")
			for prefix := path; ; {
				if match(p, prefix) {
					excluded = !neg
					break
				}
				i := strings.LastIndex(prefix, "/")
				if i < 0 {
					break
				}
				prefix = prefix[:i]
			}
		}
		return excluded
	}
}
