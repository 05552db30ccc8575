package auth

import "testing"

func TestPatterns(t *testing.T) {
	cases := []struct {
		pattern string
		yes, no []string
	}{
		{"news", []string{"news"}, []string{"news.eu", "new", "newsx"}},
		{"user.*", []string{"user.42", "user.a-b"}, []string{"user", "user.42.x", "users.1"}},
		{"room-*.chat", []string{"room-7.chat", "room-.chat"}, []string{"room-7.chat.x", "room.chat", "room-7/x.chat"}},
		{"*", []string{"a", "abc"}, []string{"a.b", "a/b"}},
		{"news.>", []string{"news.eu", "news.eu.fr", "news.eu/fr"}, []string{"news", "news.", "newsx.eu", "news/eu"}},
		{"news/**", []string{"news/eu", "news/eu/fr"}, []string{"news", "news.eu"}},
		{"a.*.c.>", []string{"a.b.c.d", "a.x.c.d.e"}, []string{"a.b.c", "a.b.d.e", "a.b.b.c.d"}},
		{">", []string{"a", "a.b.c"}, nil},
		{"**", []string{"a", "a/b"}, nil},
	}
	for _, c := range cases {
		p, err := Compile(c.pattern)
		if err != nil {
			t.Fatalf("%q: %v", c.pattern, err)
		}
		for _, s := range c.yes {
			if !p.Match(s) {
				t.Errorf("%q should match %q", c.pattern, s)
			}
		}
		for _, s := range c.no {
			if p.Match(s) {
				t.Errorf("%q should not match %q", c.pattern, s)
			}
		}
	}
	for _, bad := range []string{"", "a.>.b", "a**", "a.**.b", "a b", "a>", "x.**y"} {
		if _, err := Compile(bad); err == nil {
			t.Errorf("%q compiled", bad)
		}
	}
}
