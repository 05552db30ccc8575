package render

import (
	"cmp"
	"fmt"
	"sort"
	"strings"

	"wspush/bench/internal/scenario"
)

// writeCluster is the section of `wsbench cluster`: one publish at a time
// to many clients over wspush nodes joined by NATS.
func writeCluster(b *strings.Builder, f *scenario.File) {
	fmt.Fprintf(b, "## One publish to 1M clients through NATS\n\nRun %s (%s).\n\n", f.Started.UTC().Format("2006-01-02 15:04 UTC"), f.Finished.Sub(f.Started).Round(1e9))
	for _, n := range f.Notes {
		fmt.Fprintf(b, "> %s\n\n", n)
	}
	r := f.Cluster
	if r == nil {
		return
	}
	c := r.Config
	ticks := "no ticks, pings or idle timeout"
	if c.Ticks > 0 {
		ticks = fmt.Sprintf("`-push-interval %s`, no pings or idle timeout", c.Ticks)
	}
	pres := ""
	if c.Presence {
		pres = ` -presence` + " (every `sub` with `\"presence\":true`)"
	}
	fmt.Fprintf(b, "A nats-server %s with JetStream and %d wspush nodes joined by it (ports %d–%d, `-nats`, `-max-conns %d`, `-history-ttl 1h`, %s); "+
		"wsload `publish -topics %d -procs auto -sources %s`%s: %d subscribers of %s over all nodes, ramp %d/s; "+
		"then %d publishes through node 0's `POST /v1/publish`, one every %s from %s after wsload's start. Everything on this one machine.\n\n",
		cmp.Or(r.NATSVersion, "–"), c.Procs, c.Port, c.Port+c.Procs-1, c.MaxConns, ticks, max(c.Topics, 1), c.Sources, pres, c.Conns, topicsPhrase(c.Topics), c.Rate, c.Publishes, c.PubEvery, c.PubAfter)
	b.WriteString("End-to-end latency = wsload's read − the message's `ts` (when the node accepted the publish). " +
		"One publish is in flight at a time, so a publish's max is the time it took to reach every client.\n\n")
	want := c.Owed()
	b.WriteString("| figure | value | goal |\n|---|---:|---|\n")
	fmt.Fprintf(b, "| connections wanted | %d | |\n", c.Conns)
	fmt.Fprintf(b, "| established / peak / at the end (wsload) | %d / %d / %d | |\n", r.Established, r.Peak, r.Final)
	fmt.Fprintf(b, "| held by the nodes before the first publish (their own count) | %d | all: %s |\n", r.AtPublish, yes(r.AtPublish >= c.Conns))
	fmt.Fprintf(b, "| publishes acknowledged | %d | %d: %s |\n", r.PublishesSent, c.Publishes, yes(r.PublishesSent == int64(c.Publishes)))
	fmt.Fprintf(b, "| deliveries / owed | %d / %d | %d: %s |\n", r.Deliveries, r.Expected, want, yes(r.Expected == want && r.Deliveries >= want))
	fmt.Fprintf(b, "| lost / gaps / duplicates / history_gone | %d / %d / %d / %d | 0: %s |\n", r.Lost, r.Gaps, r.Duplicates, r.HistoryGone,
		yes(r.Lost == 0 && r.Gaps == 0 && r.Duplicates == 0 && r.HistoryGone == 0))
	fmt.Fprintf(b, "| every client got every publish | %s | |\n", yes(r.AllReached))
	fmt.Fprintf(b, "| end-to-end p50 / p99 / max (every delivery) | %s / %s / %s | |\n", dur(r.LatencyMS.P50), dur(r.LatencyMS.P99), dur(r.LatencyMS.Max))
	fmt.Fprintf(b, "| wspush nodes' RSS, summed, before the first publish | %.2f GiB (%.0f B/conn above the idle nodes) | |\n", float64(r.NodesRSS)/(1<<30), r.RSSPerConn)
	fmt.Fprintf(b, "| wspush nodes' RSS, summed, peak | %.2f GiB | |\n", float64(r.NodesRSSPeak)/(1<<30))
	if r.RSSTotalPerConn > 0 {
		fmt.Fprintf(b, "| wspush nodes' RSS per connection (summed RSS / connections) | %.0f B | |\n", r.RSSTotalPerConn)
	}
	if p := r.TickPhase; p != nil {
		fmt.Fprintf(b, "| tick phase (%.0f–%.0f s, before the first publish): ticks pushed, per second | %d, %.0f/s | |\n", p.FromS, p.ToS, p.Ticks, p.TicksPerSec)
		fmt.Fprintf(b, "| nodes' CPU per tick (CPU seconds summed / ticks pushed) | %.2f µs (%.2f cores; nats-server %.1f s) | |\n", p.CPUPerTickUS, p.CPUCores, p.NATSCPUS)
	}
	if c.Presence {
		fmt.Fprintf(b, "| ticks carrying a presence count / all ticks received | %d / %d | |\n", r.PresenceTicks, r.Ticks)
		fmt.Fprintf(b, "| every client's last count = its topic's subscribers (%d checked) | %s | yes |\n", r.PresenceSubs, yes(r.PresenceOK))
		if r.PresenceBadTopics > 0 {
			fmt.Fprintf(b, "| topics with a wrong count | %d: %s | 0 |\n", r.PresenceBadTopics, strings.Join(r.PresenceBad, "; "))
		}
	}
	fmt.Fprintf(b, "| nats-server RSS before the first publish / peak | %.0f / %.0f MiB | |\n", float64(r.NATSRSS)/(1<<20), float64(r.NATSRSSPeak)/(1<<20))
	fmt.Fprintf(b, "| wsload-bound | %v | |\n", r.WsloadBound)
	if len(r.Disconnects) > 0 || len(r.Errors) > 0 {
		fmt.Fprintf(b, "| disconnects / errors (by class) | %s / %s | |\n", classes(r.Disconnects), classes(r.Errors))
	}
	if r.Retries > 0 {
		fmt.Fprintf(b, "| connects tried again after a failed one (wsload `-retries 5`) | %d | |\n", r.Retries)
	}
	if len(r.NodeCloses) > 0 {
		fmt.Fprintf(b, "| connections the nodes closed, by reason (`client`: the client went first, wsload's own closes at the end included) | %s | |\n", classes(r.NodeCloses))
	}
	if len(r.PerPublish) > 0 {
		b.WriteString("\nPer publish (from wsload's per-second series: the seconds from its slot to the next one's, so the second at a boundary can count a few of the neighbour's deliveries; deliveries during wsload's final grace count in the totals only):\n\n")
		b.WriteString("| publish | at | deliveries | p50 | p99 | max (reached all) |\n|---:|---:|---:|---:|---:|---:|\n")
		for _, w := range r.PerPublish {
			fmt.Fprintf(b, "| %d | %.0f s | %d | %s | %s | %s |\n", w.N, w.AtS, w.Deliveries, dur(w.LagP50MS), dur(w.LagP99MS), dur(w.LagMaxMS))
		}
	}
	if r.Err != "" {
		fmt.Fprintf(b, "\nThe run ended with: `%s`\n", r.Err)
	}
	b.WriteString("\n")
}

// dur formats milliseconds: "0.8 ms", "312 ms", "15.2 s".
func dur(ms float64) string {
	switch {
	case ms >= 10_000:
		return fmt.Sprintf("%.1f s", ms/1000)
	case ms >= 100:
		return fmt.Sprintf("%.0f ms", ms)
	default:
		return fmt.Sprintf("%.1f ms", ms)
	}
}

// classes formats counts by class as "a 1, b 2" (sorted), or "none".
func classes(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// topicsPhrase is "one topic" or "100 topics".
func topicsPhrase(n int) string {
	if n <= 1 {
		return "one topic"
	}
	return fmt.Sprintf("%d topics", n)
}
