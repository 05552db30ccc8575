package wire

import (
	"encoding/json"
	"testing"
)

// topicChar is ValidTopic's alphabet, written out independently.
func topicChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	for _, ok := range []byte("._-:/@") {
		if c == ok {
			return true
		}
	}
	return false
}

func FuzzValidTopic(f *testing.F) {
	for _, s := range []string{"", "a", "news.eu/fr@v1:x_y-z", "a b", "é", "\x00", string(make([]byte, MaxTopicBytes+1))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		want := len(name) >= 1 && len(name) <= MaxTopicBytes
		for i := 0; i < len(name) && want; i++ {
			want = topicChar(name[i])
		}
		err := ValidTopic(name)
		if (err == nil) != want {
			t.Fatalf("ValidTopic(%q) = %v, want valid=%v", name, err, want)
		}
		if err != nil {
			return
		}
		// A valid topic goes into frames verbatim and stays valid JSON.
		if b := AppendSubscribed(nil, name, ModeStream, 1, "e", false, nil); !json.Valid(b) {
			t.Fatalf("subscribed frame %s is not JSON", b)
		}
		if m, err := ParseClient([]byte(`{"type":"sub","topic":"` + name + `"}`)); err != nil || m.Topic != name {
			t.Fatalf("sub to %q: %+v %v", name, m, err)
		}
	})
}
