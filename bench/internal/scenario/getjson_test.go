package scenario

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestGetJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			_, _ = w.Write([]byte(`{"max_lease_ms":4500}`))
		case "/bad":
			_, _ = w.Write([]byte(`{"max_lease_ms":`))
		default:
			http.Error(w, "no", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	cl := &http.Client{Timeout: 2 * time.Second}
	var st struct {
		MaxLeaseMS int64 `json:"max_lease_ms"`
	}
	if err := getJSON(context.Background(), cl, srv.URL+"/ok", &st); err != nil || st.MaxLeaseMS != 4500 {
		t.Fatalf("ok: %v %+v", err, st)
	}
	if err := getJSON(context.Background(), cl, srv.URL+"/bad", &st); err == nil {
		t.Fatal("a truncated body decoded")
	}
	if err := getJSON(context.Background(), cl, srv.URL+"/fail", &st); err == nil {
		t.Fatal("a 500 answer counted")
	}
	// maxLeaseOf skips nodes that fail and takes the longest of the rest
	if got := maxLeaseOf(context.Background(), []string{srv.URL + "/x", srv.URL}); got != 30*time.Second {
		t.Fatalf("no node answering /v1/presence: %v, want the 30 s default", got)
	}
}
