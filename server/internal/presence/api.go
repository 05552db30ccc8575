package presence

import (
	"net/http"

	"wspush/server/internal/admin"
	"wspush/server/wire"
)

// Register adds GET /v1/presence/{topic} to mux: the topic's subscriber
// count, cluster-wide, and its member list (member topics only); and GET
// /v1/presence: the cluster protocol's counters (Stats).
func Register(mux interface {
	Handle(pattern string, h http.Handler)
}, t *Tracker) {
	mux.Handle("GET /v1/presence", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		admin.WriteJSON(w, http.StatusOK, t.Stats())
	}))
	mux.Handle("GET /v1/presence/{topic...}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("topic")
		if err := wire.ValidTopic(name); err != nil {
			admin.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		admin.WriteJSON(w, http.StatusOK, t.Info(name))
	}))
}
