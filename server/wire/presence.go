package wire

import "strconv"

// TypePresence is a server → client frame telling a topic's subscribers
// that subscribed with "presence":true who joined and left the topic's
// member list (topics with member lists only; see docs/protocol.md).
const TypePresence = "presence"

// Member is one entry of a topic's member list: a user (empty without
// authentication) and one of its connections.
type Member struct {
	User   string `json:"user,omitempty"`
	Client string `json:"client"`
}

// AppendPresenceEntry appends one member of a tick's "presence" object:
// "topic":N, the topic's cluster-wide subscriber count.
func AppendPresenceEntry(dst []byte, topic string, n int64) []byte {
	dst = AppendString(dst, topic)
	dst = append(dst, ':')
	return strconv.AppendInt(dst, n, 10)
}

// AppendPresenceEvent appends a presence frame's payload:
// {"type":"presence","topic":T,"join":[…],"leave":[…]}, either list left
// out when empty.
func AppendPresenceEvent(dst []byte, topic string, join, leave []Member) []byte {
	dst = append(dst, `{"type":"presence","topic":`...)
	dst = AppendString(dst, topic)
	for _, l := range []struct {
		name string
		ms   []Member
	}{{"join", join}, {"leave", leave}} {
		if len(l.ms) == 0 {
			continue
		}
		dst = append(dst, `,"`...)
		dst = append(dst, l.name...)
		dst = append(dst, `":[`...)
		for i, m := range l.ms {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendMember(dst, m)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// AppendMembers appends ,"members":[…] and the closing brace to an object
// payload whose closing brace was cut off (a subscribed reply).
func AppendMembers(dst []byte, ms []Member) []byte {
	dst = append(dst, `,"members":[`...)
	for i, m := range ms {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendMember(dst, m)
	}
	return append(dst, ']', '}')
}

func appendMember(dst []byte, m Member) []byte {
	dst = append(dst, '{')
	if m.User != "" {
		dst = append(dst, `"user":`...)
		dst = AppendString(dst, m.User)
		dst = append(dst, ',')
	}
	dst = append(dst, `"client":`...)
	dst = AppendString(dst, m.Client)
	return append(dst, '}')
}
