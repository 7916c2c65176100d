package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// Machine describes where a benchmark ran; reports carry it so numbers
// are never quoted without their context.
type Machine struct {
	CPU     string // model name from /proc/cpuinfo, "" when unknown
	Cores   int    // logical CPUs
	OS      string // GOOS/GOARCH
	Go      string // runtime version
	Host    string
	Started time.Time // when the run started
}

// CurrentMachine describes this machine at now.
func CurrentMachine(now time.Time) Machine {
	m := Machine{
		Cores:   runtime.NumCPU(),
		OS:      runtime.GOOS + "/" + runtime.GOARCH,
		Go:      runtime.Version(),
		Started: now,
	}
	m.Host, _ = os.Hostname()
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	return m
}

// WriteMarkdown writes load reports as a Markdown section: a heading, the
// machine, and one table row per report.
func WriteMarkdown(w io.Writer, title string, m Machine, reports []Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s\n\n", title)
	cpu := m.CPU
	if cpu == "" {
		cpu = "unknown CPU"
	}
	fmt.Fprintf(&b, "Machine: %s, %d logical CPUs, %s, %s; run %s.\n\n", cpu, m.Cores, m.OS, m.Go, m.Started.UTC().Format(time.RFC3339))
	b.WriteString("| run | target rps | achieved rps | requests | errors | unsent | p50 | p90 | p99 | p99.9 | max |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range reports {
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %d | %d | %d | %s | %s | %s | %s | %s |\n",
			mdEscape(r.Name), r.TargetRate, r.Throughput, r.Requests, r.Errors, r.Unsent,
			fmtLatency(r.P50), fmtLatency(r.P90), fmtLatency(r.P99), fmtLatency(r.P999), fmtLatency(r.Max))
	}
	b.WriteString("\nLatency is measured from each request's scheduled send time (open loop, no coordinated omission).\n")
	for _, r := range reports {
		if r.ErrorSample != "" {
			fmt.Fprintf(&b, "\nFirst error of %s: `%s`\n", mdEscape(r.Name), strings.ReplaceAll(excerpt([]byte(r.ErrorSample)), "`", "'"))
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing the Markdown report %q: %w", title, err)
	}
	return nil
}

// fmtLatency prints a latency with three significant digits in the unit
// that suits it.
func fmtLatency(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.3g ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.3g s", d.Seconds())
	}
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
