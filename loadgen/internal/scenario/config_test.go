package scenario

import (
	"strings"
	"testing"
	"time"
)

func TestValidateThenDefaults(t *testing.T) {
	c := Config{Scenario: "ticks", Conns: 10, Rate: 100, Duration: time.Minute}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.RetryBackoff != time.Second || c.Stride != 1 || c.Timeout != 10*time.Second || c.Dialers != 64 || c.Pollers != 1 || c.Transport != "ws" {
		t.Fatalf("defaults not set: %+v", c)
	}
	set := Config{Scenario: "ticks", Conns: 10, Rate: 100, Duration: time.Minute, RetryBackoff: 2 * time.Second, Stride: 3,
		Timeout: time.Second, Dialers: 5, Pollers: 2, Transport: "sse", URL: "http://127.0.0.1:1/sse"}
	want := set
	if err := set.Validate(); err != nil || set != want {
		t.Fatalf("set fields changed: %v %+v", err, set)
	}
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Scenario = "nope" }, "unknown scenario"},
		{func(c *Config) { c.Conns = -1 }, "-conns"},
		{func(c *Config) { c.Rate = 0 }, "-rate"},
		{func(c *Config) { c.Duration = 0 }, "-duration"},
		{func(c *Config) { c.Grace = 2 * time.Minute }, "-grace"},
		{func(c *Config) { c.Scenario = "publish"; c.Admin = "http://127.0.0.1:1" }, "-topics"},
		{func(c *Config) { c.Scenario = "churn"; c.Topics = 1 }, "-admin"},
		{func(c *Config) { c.PingRate = -1 }, "rates"},
		{func(c *Config) { c.PubAfter = time.Minute }, "-pub-after"},
		{func(c *Config) { c.PubCount = -1 }, "-pub-count"},
		{func(c *Config) { c.Retries = maxRetries + 1 }, "-retries"},
		{func(c *Config) { c.RetryBackoff = maxBackoff + 1 }, "-retry-backoff"},
		// The first problem in the fixed order is the one reported.
		{func(c *Config) { c.Conns, c.Rate = -1, 0 }, "-conns"},
	} {
		c := Config{Scenario: "ticks", Conns: 10, Rate: 100, Duration: time.Minute}
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "scenario: ") {
			t.Errorf("%+v: error %v, want %q", c, err, tc.want)
		}
		if c.Stride != 0 || c.Dialers != 0 {
			t.Errorf("defaults set on an invalid config: %+v", c)
		}
	}
}
