package render

import (
	"fmt"
	"sort"
	"strings"

	"wspush/bench/internal/scenario"
)

// writeClusterTicks is the section of `wsbench cluster -ticks`/`-presence`
// runs (scenario "cluster-ticks"): the nodes' memory per connection and CPU
// per tick, presence on and off, the newest run of each scale and setting.
func writeClusterTicks(b *strings.Builder, files []*scenario.File) {
	type key struct {
		conns, procs, topics int
		presence             bool
	}
	newest := map[key]*scenario.File{}
	for _, f := range files {
		if f.Scenario != "cluster-ticks" || f.Cluster == nil {
			continue
		}
		c := f.Cluster.Config
		k := key{c.Conns, c.Procs, c.Topics, c.Presence}
		if o := newest[k]; o == nil || f.Started.After(o.Started) {
			newest[k] = f
		}
	}
	if len(newest) == 0 {
		return
	}
	runs := make([]*scenario.File, 0, len(newest))
	for _, f := range newest {
		runs = append(runs, f)
	}
	sort.Slice(runs, func(i, j int) bool {
		a, c := runs[i].Cluster.Config, runs[j].Cluster.Config
		if a.Conns != c.Conns {
			return a.Conns < c.Conns
		}
		return !a.Presence && c.Presence
	})
	b.WriteString("## Ticks and presence on the cluster: cost per connection and per tick\n\n")
	b.WriteString("`wsbench cluster -presence` (or `-ticks 5s` for presence off): the cluster run above with ticks on, the subscribers spread over `-topics` topics, " +
		"and with `-presence` every `sub` asking for `\"presence\":true`. RSS per connection = the nodes' summed RSS / the connections they hold, before the first publish; " +
		"CPU per tick = the nodes' summed CPU seconds / the ticks they pushed (their `/v1/stats` `pushes`) over the tick phase: from one tick interval + 2 s after all were connected " +
		"(runs before 2026-12-01 06:20 UTC: from the moment all were connected, so the presence-on run's window includes each client's tick with the final count) until the first publish. " +
		"The presence check: at the end, every connected client's last count for its topic must equal that topic's connected subscribers.\n\n")
	b.WriteString("| run | conns / nodes / topics | push interval | presence | RSS per conn | CPU per tick | ticks/s in the tick phase (window) | nodes' CPU | ticks carrying a count | counts right | all publishes reached all |\n")
	b.WriteString("|---|---:|---:|---|---:|---:|---:|---:|---:|---|---|\n")
	for _, f := range runs {
		r := f.Cluster
		c := r.Config
		perTick, rate, cores := "–", "–", "–"
		if p := r.TickPhase; p != nil {
			perTick = fmt.Sprintf("%.2f µs", p.CPUPerTickUS)
			rate = fmt.Sprintf("%.0f (%.0f s)", p.TicksPerSec, p.ToS-p.FromS)
			cores = fmt.Sprintf("%.2f cores", p.CPUCores)
		}
		pres, carried, right := "off", "–", "–"
		if c.Presence {
			pres, carried, right = "on", fmt.Sprintf("%d of %d", r.PresenceTicks, r.Ticks), yes(r.PresenceOK)
			if r.PresenceBadTopics > 0 {
				right += fmt.Sprintf(" (%d topics wrong)", r.PresenceBadTopics)
			}
		}
		fmt.Fprintf(b, "| %s | %d / %d / %d | %s | %s | %.0f B | %s | %s | %s | %s | %s | %s |\n",
			f.Started.UTC().Format("2006-01-02 15:04"), c.Conns, c.Procs, c.Topics, c.Ticks, pres, r.RSSTotalPerConn, perTick, rate, cores, carried, right, yes(r.AllReached))
		if r.Err != "" {
			fmt.Fprintf(b, "\n> run %s ended with: `%s`\n\n", f.Started.UTC().Format("2006-01-02 15:04"), r.Err)
		}
	}
	for _, f := range runs {
		if r := f.Cluster; !r.AllReached || (r.Config.Presence && !r.PresenceOK) {
			b.WriteString("\nA \"no\" is explained with the runs in [cluster.md](cluster.md#presence) (counts, and publishes whose HTTP call timed out on a saturated machine: `errors` in the result file).\n")
			break
		}
	}
	b.WriteString("\n")
}
