package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"wspush/server/internal/admin"
)

// errHealthcheck is what parseConfig returns for -healthcheck: main then
// checks the running server's health instead of starting one.
var errHealthcheck = errors.New("wspush: -healthcheck")

// healthcheckTimeout bounds the whole check, connect and answer.
const healthcheckTimeout = 3 * time.Second

// healthcheck is wspush -healthcheck, for a container's HEALTHCHECK in an
// image without a shell or curl: it GETs /healthz on the admin address
// (an unspecified host, such as 0.0.0.0 or an empty one, is asked on
// loopback) and returns the exit status, 0 when the answer is 200 and 1
// otherwise, with one line on out saying what it found. /healthz needs no
// admin token.
func healthcheck(adminAddr string, out io.Writer) int {
	url, err := healthzURL(adminAddr)
	if err != nil {
		fmt.Fprintln(out, err)
		return 1
	}
	client := &http.Client{Timeout: healthcheckTimeout}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintf(out, "wspush: healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(out, "wspush: healthcheck: %s answered %s: %s\n", url, resp.Status, compact(body))
		return 1
	}
	fmt.Fprintf(out, "%s: %s\n", url, compact(body))
	return 0
}

// healthzURL is the URL of /healthz on a listen address.
func healthzURL(addr string) (string, error) {
	if addr == "" {
		addr = admin.DefaultAddr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("wspush: healthcheck: -admin-addr %q: %w", addr, err)
	}
	if port == "" || port == "0" {
		return "", fmt.Errorf("wspush: healthcheck: -admin-addr %q has no fixed port to ask", addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}

// compact is an answer's body on one line.
func compact(b []byte) string {
	out := make([]byte, 0, len(b))
	space := false
	for _, c := range b {
		if c == '\n' || c == '\r' || c == '\t' || c == ' ' {
			space = true
			continue
		}
		if space && len(out) > 0 {
			out = append(out, ' ')
		}
		space = false
		out = append(out, c)
	}
	return string(out)
}
