package main

// The operator files of docs/ops: the Grafana dashboard is importable and
// well formed, the alert rules pass `promtool check rules` and their unit
// tests (`promtool test rules`). prometheus_test.go queries both against a
// real Prometheus.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string     `json:"name"`
			Type       string     `json:"type"`
			Definition string     `json:"definition"`
			Datasource datasource `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasource    `json:"datasource"`
	Panels     []grafanaPanel `json:"panels"` // a collapsed row's
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

// allPanels returns every panel, those inside rows included, rows excluded.
func (d dashboard) allPanels() []grafanaPanel {
	var out []grafanaPanel
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			if p.Type != "row" {
				out = append(out, p)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// The dashboard imports into Grafana as is: it asks for a Prometheus data
// source on import, every panel and variable uses it, ids are unique,
// panels fit the 24-column grid without overlapping, every panel has at
// least one query.
func TestGrafanaDashboardIsImportable(t *testing.T) {
	d := readDashboard(t)
	const ds = "${DS_PROMETHEUS}"
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs %+v, want the one Prometheus data source DS_PROMETHEUS", d.Inputs)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 30 {
		t.Errorf("uid %q, title %q, schemaVersion %d", d.UID, d.Title, d.SchemaVersion)
	}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	var check func([]grafanaPanel)
	check = func(ps []grafanaPanel) {
		for _, p := range ps {
			if p.ID == 0 || ids[p.ID] {
				t.Errorf("panel %q: id %d missing or repeated", p.Title, p.ID)
			}
			ids[p.ID] = true
			g := p.GridPos
			if g.W < 1 || g.H < 1 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, g)
			}
			for x := g.X; x < g.X+g.W; x++ {
				for y := g.Y; y < g.Y+g.H; y++ {
					if other, ok := used[cell{x, y}]; ok {
						t.Errorf("panel %q overlaps %q at (%d,%d)", p.Title, other, x, y)
					}
					used[cell{x, y}] = p.Title
				}
			}
			check(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Title == "" || p.Datasource == nil || p.Datasource.UID != ds || p.Datasource.Type != "prometheus" {
				t.Errorf("panel %d %q: data source %+v, want prometheus %s", p.ID, p.Title, p.Datasource, ds)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, q := range p.Targets {
				if q.Expr == "" || q.RefID == "" || q.Datasource == nil || q.Datasource.UID != ds {
					t.Errorf("panel %q: query %+v", p.Title, q)
				}
			}
		}
	}
	check(d.Panels)
	if len(d.Templating.List) == 0 {
		t.Error("no variables (job, instance)")
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" || v.Datasource.UID != ds || v.Definition == "" {
			t.Errorf("variable %+v", v)
		}
	}
}

// The alert rules are valid and their unit tests (alerts_test.yml: each
// alert fires on some sample series and not on others) pass.
func TestAlertRules(t *testing.T) {
	promtool := findPromTool(t, "promtool", "PROMTOOL_PATH")
	rules, err := filepath.Abs(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := filepath.Abs(alertsTest)
	if err != nil {
		t.Fatal(err)
	}
	promtoolRun(t, promtool, nil, []string{"Checking ", "SUCCESS: "}, "check", "rules", rules)
	promtoolRun(t, promtool, nil, []string{"Unit Testing: ", "SUCCESS"}, "test", "rules", tests)
}
