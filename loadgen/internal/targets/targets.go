// Package targets turns -url and -sources into the (server, source
// address) pair of every connection: connection i goes to URL i mod U from
// source i mod S, so both spread evenly and a worker process given a slice
// of the connection numbers keeps the spread.
//
// Concurrency: a Plan is immutable after Parse; safe from any goroutine.
package targets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// MaxSources bounds a -sources list.
const MaxSources = 1 << 16

// Endpoint is one WebSocket URL.
type Endpoint struct {
	Addr string // host:port to dial
	Host string // Host header
	Path string // request path with query
}

// Plan is the parsed -url and -sources.
type Plan struct {
	Endpoints []Endpoint
	Sources   []net.IP // empty: the kernel picks
}

// Parse reads a comma list of ws:// URLs (a port range "ws://h:9000-9003/ws"
// expands to one URL per port) and a -sources list.
func Parse(urls, sources string) (Plan, error) {
	var p Plan
	for _, raw := range strings.Split(urls, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		eps, err := parseURL(raw)
		if err != nil {
			return Plan{}, err
		}
		p.Endpoints = append(p.Endpoints, eps...)
	}
	if len(p.Endpoints) == 0 {
		return Plan{}, errors.New("targets: no -url given")
	}
	src, err := ParseSources(sources)
	if err != nil {
		return Plan{}, err
	}
	p.Sources = src
	return p, nil
}

func parseURL(raw string) ([]Endpoint, error) {
	rest, ok := strings.CutPrefix(raw, "ws://")
	if !ok {
		rest, ok = strings.CutPrefix(raw, "http://") // an SSE stream (-transport sse)
	}
	if !ok {
		return nil, fmt.Errorf("targets: bad -url %q: only ws:// (or http:// for SSE) is supported", raw)
	}
	hostport, path := rest, "/"
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		hostport, path = rest[:i], rest[i:]
		if path[0] == '?' {
			path = "/" + path
		}
	}
	if _, err := url.ParseRequestURI(path); err != nil {
		return nil, fmt.Errorf("targets: bad -url %q: %w", raw, err)
	}
	host, ports, ok := strings.Cut(hostport, ":")
	if !ok || host == "" {
		return nil, fmt.Errorf("targets: bad -url %q: want ws://host:port/path", raw)
	}
	if ip := net.ParseIP(host); ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("targets: bad -url %q: host must be a loopback IPv4 address", raw)
	}
	lo, hi, err := parseRange(ports, strconv.Atoi)
	if err != nil || lo < 1 || hi > 65535 || hi-lo > 1024 {
		return nil, fmt.Errorf("targets: bad port %q in -url %q", ports, raw)
	}
	var eps []Endpoint
	for port := lo; port <= hi; port++ {
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		eps = append(eps, Endpoint{Addr: addr, Host: addr, Path: path})
	}
	return eps, nil
}

// ParseSources reads "127.0.0.2-127.0.0.60,127.0.1.1,127.0.2.0/30": single
// IPv4 loopback addresses, inclusive ranges and CIDR blocks, in order,
// duplicates removed. An empty string gives nil (no binding).
func ParseSources(s string) ([]net.IP, error) {
	var out []net.IP
	seen := map[uint32]bool{}
	add := func(v uint32) error {
		if len(out) >= MaxSources {
			return fmt.Errorf("targets: more than %d sources", MaxSources)
		}
		if !seen[v] {
			seen[v] = true
			out = append(out, u2ip(v))
		}
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		var lo, hi uint32
		if strings.Contains(part, "/") {
			ip, n, err := net.ParseCIDR(part)
			if err != nil || ip.To4() == nil {
				return nil, fmt.Errorf("targets: bad source block %q", part)
			}
			ones, _ := n.Mask.Size()
			lo = ip2u(n.IP)
			hi = lo | (1<<(32-uint(ones)) - 1)
		} else {
			var err error
			lo, hi, err = parseRange(part, parseIPv4)
			if err != nil {
				return nil, fmt.Errorf("targets: bad source %q: %w", part, err)
			}
		}
		if lo>>24 != 127 || hi>>24 != 127 {
			return nil, fmt.Errorf("targets: source %q is not in 127.0.0.0/8", part)
		}
		if uint64(hi)-uint64(lo) >= MaxSources {
			return nil, fmt.Errorf("targets: source range %q is larger than %d", part, MaxSources)
		}
		for v := uint64(lo); v <= uint64(hi); v++ {
			if err := add(uint32(v)); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func parseRange[T int | uint32](s string, parse func(string) (T, error)) (T, T, error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err := parse(strings.TrimSpace(a))
	if err != nil {
		return 0, 0, err
	}
	hi := lo
	if isRange {
		if hi, err = parse(strings.TrimSpace(b)); err != nil {
			return 0, 0, err
		}
	}
	if hi < lo {
		return 0, 0, errors.New("range runs backwards")
	}
	return lo, hi, nil
}

func parseIPv4(s string) (uint32, error) {
	ip := net.ParseIP(s).To4()
	if ip == nil {
		return 0, fmt.Errorf("%q is not an IPv4 address", s)
	}
	return ip2u(ip), nil
}

func ip2u(ip net.IP) uint32 { return binary.BigEndian.Uint32(ip.To4()) }

func u2ip(v uint32) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, v)
	return ip
}

// Endpoint returns the endpoint of connection i.
func (p Plan) Endpoint(i int) Endpoint { return p.Endpoints[i%len(p.Endpoints)] }

// Source returns the source address of connection i, nil for none.
func (p Plan) Source(i int) net.IP {
	if len(p.Sources) == 0 {
		return nil
	}
	return p.Sources[(i/len(p.Endpoints))%len(p.Sources)]
}

// PerSourceEndpoint is how many connections share one (source, endpoint)
// pair for n connections: each pair can use at most ~28k ephemeral ports.
func (p Plan) PerSourceEndpoint(n int) int {
	s := len(p.Sources)
	if s == 0 {
		s = 1
	}
	pairs := s * len(p.Endpoints)
	return (n + pairs - 1) / pairs
}
