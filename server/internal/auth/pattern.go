package auth

import (
	"fmt"
	"strings"
)

// Pattern is a topic pattern from a token's topics or pub claim. Topic names
// are split into segments at '.' and '/':
//
//   - a literal segment matches itself;
//   - '*' inside a segment matches any run of characters (possibly none) within that
//     segment ("user.*" matches "user.42" but not "user.42.x"; "room-*"
//     matches "room-7");
//   - a final segment of ">" or "**" matches one or more further segments
//     ("news.>" matches "news.eu" and "news.eu.fr", not "news"); ">" or "**"
//     alone matches every topic.
type Pattern struct {
	src     string
	subtree bool // ends in > or **: prefix (with its separator) must match
	prefix  string
}

// Compile checks and compiles one pattern.
func Compile(s string) (Pattern, error) {
	if s == "" || len(s) > 256 {
		return Pattern{}, fmt.Errorf("%w: %q must be 1 to 256 bytes", ErrBadPattern, s)
	}
	p := Pattern{src: s}
	body := s
	if s == ">" || s == "**" {
		return Pattern{src: s, subtree: true}, nil
	}
	for _, tail := range []string{">", "**"} {
		if strings.HasSuffix(s, tail) && len(s) > len(tail) && isSep(s[len(s)-len(tail)-1]) {
			p.subtree = true
			body = s[:len(s)-len(tail)] // keeps the separator
		}
	}
	if err := checkBody(s, body); err != nil {
		return Pattern{}, err
	}
	p.prefix = body
	return p, nil
}

// checkBody checks the characters of pattern s before any final > or **.
func checkBody(s, body string) error {
	for i := 0; i < len(body); i++ {
		c := body[i]
		valid := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._-:/@*", c) >= 0
		if !valid {
			return fmt.Errorf("%w: %q: character %q at byte %d (> and ** only as a final segment)", ErrBadPattern, s, c, i)
		}
		if c == '*' && i+1 < len(body) && body[i+1] == '*' {
			return fmt.Errorf("%w: %q: ** only as a final segment", ErrBadPattern, s)
		}
	}
	return nil
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.src }

// Match reports whether topic matches p.
func (p Pattern) Match(topic string) bool {
	if !p.subtree {
		return globSegments(p.prefix, topic)
	}
	if p.prefix == "" {
		return topic != ""
	}
	// prefix ends with a separator: match the segments before it against as
	// many of topic's, then require at least one more segment.
	n := countSeps(p.prefix)
	cut := -1
	for i, seen := 0, 0; i < len(topic); i++ {
		if isSep(topic[i]) {
			seen++
			if seen == n {
				cut = i
				break
			}
		}
	}
	if cut < 0 || cut+1 >= len(topic) || topic[cut] != p.prefix[len(p.prefix)-1] {
		return false
	}
	return globSegments(p.prefix[:len(p.prefix)-1], topic[:cut])
}

// globSegments matches pattern against name, where '*' matches any run of
// characters that contains no separator, and separators match themselves.
func globSegments(pattern, name string) bool {
	// Iterative glob with single-star backtracking, confined to segments.
	px, nx := 0, 0
	starPx, starNx := -1, -1
	for px < len(pattern) || nx < len(name) {
		if px < len(pattern) {
			c := pattern[px]
			if c == '*' {
				starPx, starNx = px, nx
				px++
				continue
			}
			if nx < len(name) && name[nx] == c {
				px++
				nx++
				continue
			}
		}
		// Backtrack: let the last star eat one more character, but never a
		// separator.
		if starPx >= 0 && starNx < len(name) && !isSep(name[starNx]) {
			starNx++
			px, nx = starPx+1, starNx
			continue
		}
		return false
	}
	return true
}

func isSep(c byte) bool { return c == '.' || c == '/' }

func countSeps(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if isSep(s[i]) {
			n++
		}
	}
	return n
}

func matchAny(ps []Pattern, topic string) bool {
	for i := range ps {
		if ps[i].Match(topic) {
			return true
		}
	}
	return false
}
