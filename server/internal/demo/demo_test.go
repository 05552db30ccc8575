package demo

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// The page carries the admin address (escaped) and whether a token is
// needed, never a placeholder, with its headers.
func TestHandlerRendersTheAdminAddress(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{AdminAddr: "0.0.0.0:8081", AdminToken: true}, `content="0.0.0.0:8081" data-token="true"`},
		{Config{AdminAddr: `127.0.0.1:9"<x>`}, `content="127.0.0.1:9&#34;&lt;x&gt;" data-token="false"`},
		{Config{}, `content="" data-token="false"`},
	} {
		rec := httptest.NewRecorder()
		Handler(c.cfg).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		body := rec.Body.String()
		if !strings.Contains(body, c.want) || strings.Contains(body, "{{") {
			t.Errorf("%+v: page has no %s, or a placeholder left", c.cfg, c.want)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" || rec.Header().Get("Content-Security-Policy") == "" {
			t.Errorf("%+v: Content-Type %q, CSP %q", c.cfg, ct, rec.Header().Get("Content-Security-Policy"))
		}
	}
}
