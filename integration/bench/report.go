package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// results holds every timing; a missing one (a run cut short) is NaN.
type results struct {
	setups    []string
	workloads []string
	rounds    int
	secs      map[string]map[string][]float64 // workload, setup, round
	orders    [][]string                      // setup order of each round
	// passthrough is what each setup's probe found, per round.
	passthrough map[string][]string
}

func newResults(setups, workloads []string, rounds int) *results {
	r := &results{setups: setups, workloads: workloads, rounds: rounds,
		secs: map[string]map[string][]float64{}, passthrough: map[string][]string{}}
	for _, w := range workloads {
		r.secs[w] = map[string][]float64{}
		for _, s := range setups {
			v := make([]float64, rounds)
			for i := range v {
				v[i] = math.NaN()
			}
			r.secs[w][s] = v
		}
	}
	return r
}

// ratios are the comparisons reported, as numerator/denominator setups.
var ratios = [][2]string{{"loopback", "bare"}, {"replfs", "bare"}, {"replfs", "loopback"}}

func (r *results) median(w, s string) float64 { return median(r.secs[w][s]) }

// medianRatio is the median over rounds of a/b: each round compares
// setups that ran minutes apart at most, which the machine's swings
// between runs would otherwise swamp.
func (r *results) medianRatio(w, a, b string) float64 {
	var q []float64
	for i := range r.rounds {
		q = append(q, r.secs[w][a][i]/r.secs[w][b][i])
	}
	return median(q)
}

func median(v []float64) float64 {
	var ok []float64
	for _, x := range v {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			ok = append(ok, x)
		}
	}
	if len(ok) == 0 {
		return math.NaN()
	}
	slices.Sort(ok)
	n := len(ok)
	if n%2 == 1 {
		return ok[n/2]
	}
	return (ok[n/2-1] + ok[n/2]) / 2
}

// passthroughSummary folds the per-round probe answers of a setup.
func (r *results) passthroughSummary(s string) string {
	seen := map[string]bool{}
	var order []string
	for _, v := range r.passthrough[s] {
		if !seen[v] {
			seen[v] = true
			order = append(order, v)
		}
	}
	switch len(order) {
	case 0:
		return "unknown"
	case 1:
		return order[0]
	default:
		return "mixed (" + strings.Join(order, ", ") + ")"
	}
}

func (r *results) writeTable(w io.Writer) {
	head := []string{"workload"}
	for _, s := range r.setups {
		head = append(head, s+"(s)")
	}
	for _, q := range ratios {
		head = append(head, q[0]+"/"+q[1])
	}
	rows := [][]string{head}
	for _, wl := range r.workloads {
		row := []string{wl}
		for _, s := range r.setups {
			row = append(row, fmtNum(r.median(wl, s), "%.3f"))
		}
		for _, q := range ratios {
			row = append(row, fmtNum(r.medianRatio(wl, q[0], q[1]), "%.2fx"))
		}
		rows = append(rows, row)
	}
	width := make([]int, len(head))
	for _, row := range rows {
		for i, c := range row {
			width[i] = max(width[i], len(c))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, c := range row {
			if i == 0 {
				fmt.Fprintf(&b, "%-*s", width[i], c)
			} else {
				fmt.Fprintf(&b, "  %*s", width[i], c)
			}
		}
		fmt.Fprintln(w, b.String())
	}
}

func fmtNum(x float64, format string) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "-"
	}
	return fmt.Sprintf(format, x)
}

// report is the JSON form of the table.
type report struct {
	Kernel       string            `json:"kernel"`
	Complete     bool              `json:"complete"`
	Error        string            `json:"error,omitempty"`
	Rounds       int               `json:"rounds"`
	Quick        bool              `json:"quick"`
	SeqBytes     int64             `json:"seq_bytes"`
	SmallFiles   int               `json:"small_files"`
	TarEntries   int               `json:"tarball_entries"`
	TarFiles     int               `json:"tarball_files"`
	Workdir      string            `json:"workdir"`
	WorkdirFS    string            `json:"workdir_fs"`
	DropCaches   bool              `json:"drop_caches"`
	Passthrough  map[string]string `json:"passthrough"`
	Orders       [][]string        `json:"round_orders"`
	Workloads    []reportRow       `json:"workloads"`
	RatioColumns []string          `json:"ratio_columns"`
}

type reportRow struct {
	Workload string                `json:"workload"`
	Median   map[string]*float64   `json:"median_seconds"`
	Ratio    map[string]*float64   `json:"median_ratio"`
	Rounds   map[string][]*float64 `json:"round_seconds"`
}

func (r *results) rows() []reportRow {
	var out []reportRow
	for _, wl := range r.workloads {
		row := reportRow{Workload: wl, Median: map[string]*float64{}, Ratio: map[string]*float64{},
			Rounds: map[string][]*float64{}}
		for _, s := range r.setups {
			row.Median[s] = jsonNum(r.median(wl, s))
			for _, x := range r.secs[wl][s] {
				row.Rounds[s] = append(row.Rounds[s], jsonNum(x))
			}
		}
		for _, q := range ratios {
			row.Ratio[q[0]+"/"+q[1]] = jsonNum(r.medianRatio(wl, q[0], q[1]))
		}
		out = append(out, row)
	}
	return out
}

// jsonNum maps a missing value to null; JSON has no NaN.
func jsonNum(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

func writeJSON(path string, rep report) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}
