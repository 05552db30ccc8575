// Package client holds the JavaScript client of wspush (the entry module
// wspush.js and the modules it imports from wspush/, with the npm package
// files next to them) and serves it: the gateway mounts Handler at
// GET /wspush.js and GET /wspush/ on the WebSocket listener, so that a page
// importing /wspush.js finds /wspush/client.js and the rest where the
// relative imports point. The bytes and ETags are computed once at start;
// Handler is safe for concurrent use and holds no mutable state.
package client

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

//go:embed wspush.js wspush/*.js
var files embed.FS

// module is one served file.
type module struct {
	body []byte
	etag string
}

// modules maps a URL path (/wspush.js, /wspush/client.js, …) to its file.
var modules = func() map[string]module {
	m := map[string]module{}
	err := fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		m["/"+name] = module{body: b, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic("client: reading the embedded modules: " + err.Error())
	}
	return m
}()

// Paths lists the URL paths served, sorted: /wspush.js and /wspush/*.js.
func Paths() []string {
	ps := make([]string, 0, len(modules))
	for p := range modules {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// File returns the bytes and the strong ETag served at path (as Paths
// lists it); ok is false for any other path. The slice is shared: do not
// modify it.
func File(path string) (body []byte, etag string, ok bool) {
	m, ok := modules[path]
	return m.body, m.etag, ok
}

// Script returns the entry module's source (wspush.js). The slice is
// shared: do not modify it.
func Script() []byte { return modules["/wspush.js"].body }

// ETag is the entry module's strong entity tag: a quoted SHA-256 prefix of
// its bytes. Every module has its own (File).
var ETag = modules["/wspush.js"].etag

// MaxAge is how long browsers and proxies may reuse a module without
// asking again (in seconds); after that a revalidation costs a 304.
const MaxAge = 300

// Handler serves the modules by URL path (404 for any other): text/javascript,
// the module's ETag, Cache-Control with MaxAge, 304 Not Modified for a
// matching If-None-Match, and CORS open to every origin so that pages on
// other origins can import them (module scripts are fetched in CORS mode).
func Handler() http.Handler {
	cache := "public, max-age=" + strconv.Itoa(MaxAge)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, ok := modules[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("ETag", m.etag)
		h.Set("Cache-Control", cache)
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("X-Content-Type-Options", "nosniff")
		if matches(r.Header.Get("If-None-Match"), m.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(m.body)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(m.body)
	})
}

// matches reports whether an If-None-Match list names tag (or is "*").
// Weak comparison, as RFC 9110 §13.1.2 asks for If-None-Match.
func matches(list, tag string) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == tag || t == "*" {
			return true
		}
	}
	return false
}
