package scenario

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Scenarios wsload knows.
var Names = []string{"connect", "ticks", "publish", "churn", "echo"}

// Config is one process's share of a run. The parent process fills it from
// flags; a worker process receives it as JSON with Offset/Stride set.
type Config struct {
	Scenario string        `json:"scenario"`
	URL      string        `json:"url"`     // comma list of ws:// URLs (port ranges allowed)
	Admin    string        `json:"admin"`   // admin base URL for publish/churn
	Sources  string        `json:"sources"` // -sources list
	Conns    int           `json:"conns"`   // connections of this process
	Rate     float64       `json:"rate"`    // connections per second of this process
	Duration time.Duration `json:"duration"`
	Grace    time.Duration `json:"grace"`   // wait for in-flight deliveries at the end
	Timeout  time.Duration `json:"timeout"` // connect + upgrade
	Path     string        `json:"-"`
	Pollers  int           `json:"pollers"`
	Dialers  int           `json:"dialers"`

	// ReadBatch: a poller woken from an idle wait pauses this long before
	// reading, so what arrives meanwhile is read in one batch (engine
	// Config.ReadBatch); 0 = read at once.
	ReadBatch time.Duration `json:"read_batch,omitempty"`
	// StdDial dials with the standard library on -dialers goroutines
	// instead of the engine's raw callback dial (engine.Config.StdDial).
	StdDial bool `json:"std_dial,omitempty"`

	Topics  int     `json:"topics"`
	PubRate float64 `json:"pub_rate"` // publishes per second (whole run)
	// PubAfter delays the first publish (e.g. until the ramp is over);
	// PubCount stops after that many publishes (0: until the end).
	PubAfter  time.Duration `json:"pub_after"`
	PubCount  int           `json:"pub_count"`
	PingRate  float64       `json:"ping_rate"`  // pings per second of this process
	ChurnRate float64       `json:"churn_rate"` // reconnects per second of this process
	// Transport: "ws" or "sse" (the server's /sse stream; the publish
	// scenario puts each connection's topic in its URL); "" = by -url's
	// scheme, sse for http://.
	Transport string `json:"transport,omitempty"`
	// Presence: subscribe with "presence":true; the counts ticks carry
	// are checked at the end (result.TopicStat's presence fields).
	Presence bool `json:"presence"`
	// Broadcast (publish): the clients do not subscribe; the messages
	// they get are the server's broadcasts (topic ""), sent by someone
	// else (wsbench bcast1m), checked and timed like topic messages.
	// wsload publishes nothing then.
	Broadcast bool `json:"broadcast,omitempty"`

	// Retries: a slot whose connect failed is dialled again up to this
	// many times (0: never); the first wait is RetryBackoff, doubling
	// (retry.go).
	Retries      int           `json:"retries"`
	RetryBackoff time.Duration `json:"retry_backoff"`

	// Offset and Stride map local connection j to global number
	// Offset+j*Stride (which picks its URL and source).
	Offset int `json:"offset"`
	Stride int `json:"stride"`
	// Publisher: only one process publishes (publish, churn).
	Publisher bool `json:"publisher"`
	// StartAt lets workers start their ramps together.
	StartAt time.Time `json:"start_at"`
	// TotalConns and Procs are the whole run's, for the record.
	TotalConns int `json:"total_conns"`
	Procs      int `json:"procs"`
}

// Validate checks c (validate), then gives the fields left 0 their
// defaults (setDefaults).
func (c *Config) Validate() error {
	if err := c.validate(); err != nil {
		return err
	}
	c.setDefaults()
	return nil
}

// validate checks bounds so that every loop is bounded; it reports the
// first problem, in a fixed order.
func (c *Config) validate() error {
	pubs := c.Scenario == "publish" || c.Scenario == "churn"
	switch {
	case !slices.Contains(Names, c.Scenario):
		return fmt.Errorf("scenario: unknown scenario %q", c.Scenario)
	case c.Conns < 0 || c.Conns > 10_000_000:
		return errors.New("scenario: -conns must be 0..10000000")
	case c.Rate <= 0:
		return errors.New("scenario: -rate must be > 0")
	case c.Duration <= 0 || c.Duration > 7*24*time.Hour:
		return errors.New("scenario: -duration must be > 0 and at most a week")
	case c.Grace < 0 || c.Grace > time.Minute:
		return errors.New("scenario: -grace must be 0..1m")
	case pubs && c.Topics <= 0:
		return errors.New("scenario: -topics must be > 0")
	case pubs && c.Admin == "":
		return errors.New("scenario: -admin is required for publish and churn")
	case c.Presence && !pubs:
		return errors.New("scenario: -presence needs the publish or churn scenario")
	case c.Broadcast && (c.Scenario != "publish" || c.Presence || c.Transport == "sse"):
		return errors.New("scenario: -broadcast needs the publish scenario over WebSocket, without -presence")
	case c.Transport != "" && c.Transport != "ws" && c.Transport != "sse":
		return fmt.Errorf("scenario: -transport must be ws or sse, not %q", c.Transport)
	case c.Transport == "sse" && (c.Scenario == "churn" || c.Scenario == "echo"):
		return fmt.Errorf("scenario: -transport sse serves connect, ticks and publish (an SSE client sends nothing), not %s", c.Scenario)
	case c.PubRate < 0 || c.PingRate < 0 || c.ChurnRate < 0:
		return errors.New("scenario: rates must be >= 0")
	case c.PubAfter < 0 || c.PubAfter >= c.Duration:
		return errors.New("scenario: -pub-after must be 0 or more and less than -duration")
	case c.PubCount < 0:
		return errors.New("scenario: -pub-count must be >= 0")
	case c.Retries < 0 || c.Retries > maxRetries:
		return fmt.Errorf("scenario: -retries must be 0..%d", maxRetries)
	case c.RetryBackoff < 0 || c.RetryBackoff > maxBackoff:
		return fmt.Errorf("scenario: -retry-backoff must be 0..%s", maxBackoff)
	case c.ReadBatch < 0 || c.ReadBatch > 10*time.Millisecond:
		return errors.New("scenario: -read-batch must be 0..10ms")
	}
	return nil
}

// setDefaults gives the fields whose 0 (or negative) means "default" their
// values.
func (c *Config) setDefaults() {
	c.RetryBackoff = cmp.Or(c.RetryBackoff, time.Second)
	if c.Transport == "" {
		c.Transport = "ws"
		if strings.HasPrefix(c.URL, "http://") {
			c.Transport = "sse"
		}
	}
	if c.Stride <= 0 {
		c.Stride = 1
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Dialers <= 0 {
		c.Dialers = 64
	}
	if c.Pollers <= 0 {
		c.Pollers = 1
	}
}
