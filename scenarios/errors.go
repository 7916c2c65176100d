package scenarios

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// LoadError is one problem found while loading scenario and offer files:
// where it is and a sentence that says what is wrong and how to fix it.
type LoadError struct {
	File string // path inside the loaded file system
	Line int    // 1-based; 0 when the problem is not tied to a line
	Msg  string
}

func (e *LoadError) Error() string {
	if e.Line > 0 {
		return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	if e.File != "" {
		return e.File + ": " + e.Msg
	}
	return e.Msg
}

// LoadErrors is every problem of one load, sorted by file and line. A load
// reports all of them at once so a marketer fixes a file in one pass.
type LoadErrors []*LoadError

func (es LoadErrors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

func (es LoadErrors) sorted() LoadErrors {
	slices.SortStableFunc(es, func(a, b *LoadError) int {
		if c := cmp.Compare(a.File, b.File); c != 0 {
			return c
		}
		return cmp.Compare(a.Line, b.Line)
	})
	return es
}

// suggest returns ` (did you mean "x"?)` for the candidate closest to s, or
// "" when none is close enough to be a likely typo.
func suggest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	if best == "" || bestD > max(2, len(s)/3) {
		// A name cut short ("visit_dwell" for "visit_dwell_min", "purchase"
		// for "pos_purchase").
		best = ""
		for _, c := range candidates {
			if len(s) >= 4 && strings.Contains(c, s) && (best == "" || len(c) < len(best)) {
				best = c
			}
		}
		if best == "" {
			return ""
		}
	}
	return " (did you mean " + strconv.Quote(best) + "?)"
}

// editDistance is the Levenshtein distance of a and b, by bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// quoteList renders names as "a", "b" or "c" for messages.
func quoteList(names []string) string {
	var b strings.Builder
	for i, n := range names {
		switch {
		case i == 0:
		case i == len(names)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(n))
	}
	return b.String()
}

// formatDuration renders d the way files write it: 48h, 7d, 90m.
func formatDuration(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0 && d >= 72*time.Hour:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return d.String()
}
