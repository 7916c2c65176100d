package scenarios

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"nbo/features"
)

// File layout. A library is a directory of YAML files (*.yaml, *.yml; not
// recursive: testdata/ holds golden tests). Each file is a mapping with an
// optional `offers:` list and an optional `scenarios:` list; IDs are
// global across files. See library/ for the built-in library.

// maxFileSize bounds one file so a stray upload cannot exhaust memory.
const maxFileSize = 4 << 20

// Load reads every YAML file at the top of fsys, checks it strictly and
// compiles it into an immutable Set. On any problem it returns a nil Set
// and a LoadErrors listing every problem with file:line. now is recorded
// as the set's load time.
func Load(fsys fs.FS, now time.Time) (*Set, error) {
	names, err := libraryFiles(fsys)
	if err != nil {
		return nil, err
	}
	l := &loader{files: map[string][]byte{}}
	if len(names) == 0 {
		return nil, LoadErrors{{Msg: "no scenario files (*.yaml) found; run `nbo rules export DIR` for a starting point"}}
	}
	h := sha256.New()
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			l.errs = append(l.errs, &LoadError{File: name, Msg: "cannot read the file: " + err.Error()})
			continue
		}
		if len(data) > maxFileSize {
			l.errs = append(l.errs, &LoadError{File: name, Msg: fmt.Sprintf("the file is %d bytes; the limit is %d — split it", len(data), maxFileSize)})
			continue
		}
		l.files[name] = data
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write(data)
		h.Write([]byte{0})
	}
	return l.load(names, hex.EncodeToString(h.Sum(nil))[:16], now)
}

// libraryFiles lists the YAML files at the top of fsys, sorted; hidden
// files (editor swap and temp files) are skipped.
func libraryFiles(fsys fs.FS) ([]string, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("scenarios: listing the scenario directory: %w", err)
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		if ext := path.Ext(name); ext == ".yaml" || ext == ".yml" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// loader accumulates the parsed definitions and every problem.
type loader struct {
	files     map[string][]byte
	file      string // the file being parsed
	errs      LoadErrors
	offers    []*Offer
	scenarios []*scenarioDef
}

// scenarioDef is a scenario before offer references and expressions are
// resolved.
type scenarioDef struct {
	sc        *Scenario
	offerRefs []*yaml.Node
	when      *yaml.Node
	reason    [NumLocales]*yaml.Node
	hasReason bool
	seqNode   *yaml.Node
}

func (l *loader) errf(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	l.errs = append(l.errs, &LoadError{File: l.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) load(names []string, version string, now time.Time) (*Set, error) {
	for _, name := range names {
		data, ok := l.files[name]
		if !ok {
			continue
		}
		l.file = name
		l.parseFile(data)
	}
	set := &Set{Version: version, LoadedAt: now, offerByID: map[string]*Offer{}, byID: map[string]*Scenario{}, files: l.files}

	for _, o := range l.offers {
		if prev, dup := set.offerByID[o.ID]; dup {
			l.file = o.File
			l.errs = append(l.errs, &LoadError{File: o.File, Line: o.Line, Msg: fmt.Sprintf("duplicate offer id %q (first defined at %s:%d); give each offer a unique id", o.ID, prev.File, prev.Line)})
			continue
		}
		set.offerByID[o.ID] = o
		o.Index = len(set.Offers)
		set.Offers = append(set.Offers, o)
	}
	var offerIDs []string
	for id := range set.offerByID {
		offerIDs = append(offerIDs, id)
	}
	sort.Strings(offerIDs)

	c := &exprCompiler{}
	unknownRef := false
	for _, d := range l.scenarios {
		sc := d.sc
		l.file = sc.File
		prev, dup := set.byID[sc.ID]
		if dup {
			l.errs = append(l.errs, &LoadError{File: sc.File, Line: sc.Line, Msg: fmt.Sprintf("duplicate scenario id %q (first defined at %s:%d); give each scenario a unique id", sc.ID, prev.File, prev.Line)})
		}
		for _, ref := range d.offerRefs {
			o := set.offerByID[ref.Value]
			if o == nil {
				l.errf(ref, "scenario %q proposes unknown offer %q%s; define it under offers: or fix the id", sc.ID, ref.Value, suggest(ref.Value, offerIDs))
				unknownRef = true
				continue
			}
			if o.Channels&sc.Channels == 0 && o.Channels != 0 && sc.Channels != 0 { // no channels: reported
				l.errf(ref, "scenario %q proposes offer %q on channels the offer is never shown on; add a shared channel to one of them", sc.ID, ref.Value)
			}
			sc.Offers = append(sc.Offers, o)
		}
		if d.when != nil {
			sc.whenSrc = d.when.Value
			prog, probs := c.compile(d.when.Value, sc.ForEach)
			for _, p := range probs {
				l.errs = append(l.errs, &LoadError{File: sc.File, Line: exprLine(d.when, p.line), Msg: fmt.Sprintf("scenario %q, when (column %d): %s", sc.ID, p.col, p.msg)})
			}
			sc.when = prog
		}
		for loc := ZhCN; loc < NumLocales; loc++ {
			n := d.reason[loc]
			if n == nil {
				continue
			}
			t, err := compileTemplate(n.Value)
			if err != nil {
				l.errf(n, "scenario %q, reason %s: %v", sc.ID, loc, err)
				continue
			}
			if sc.ForEach == NoForEach {
				for _, part := range t.parts {
					if part.field >= 0 && isItemField(part.field) {
						l.errf(n, "scenario %q, reason %s: {%s} is a for_each item and the scenario has no for_each; remove it or add for_each", sc.ID, loc, reflectName(part.field))
					}
				}
			}
			sc.reason[loc] = t
		}
		if dup {
			continue // checked for every error, not registered
		}
		sc.Index = len(set.Scenarios)
		set.byID[sc.ID] = sc
		set.Scenarios = append(set.Scenarios, sc)
	}
	// An offer only scenarios propose, and none does, could never be
	// given. After a misspelt reference the offer meant is reported
	// through its "did you mean", not twice.
	proposed := make([]bool, len(set.Offers))
	for _, sc := range set.Scenarios {
		for _, o := range sc.Offers {
			proposed[o.Index] = true
		}
	}
	for _, o := range set.Offers {
		if !o.Untargeted && !proposed[o.Index] && !unknownRef {
			l.errs = append(l.errs, &LoadError{File: o.File, Line: o.Line, Msg: fmt.Sprintf("offer %q is proposed by no scenario and is not untargeted, so it could never be given; list it in a scenario's offers, or set untargeted: true to let the engine offer it to anyone eligible", o.ID)})
		}
	}
	if len(l.errs) > 0 {
		return nil, l.errs.sorted()
	}
	set.slots, set.cmps, set.needCompared = c.slots, c.cmps, c.needCompared
	return set, nil
}

// exprLine maps a line of an expression to its line in the file. A block
// scalar (`when: |`) starts on the line after its key.
func exprLine(n *yaml.Node, line int) int {
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return n.Line + line
	}
	return n.Line + line - 1
}

func (l *loader) parseFile(data []byte) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		return // an empty file defines nothing
	}
	if err == nil {
		var extra yaml.Node
		if dec.Decode(&extra) == nil {
			l.errf(&extra, "the file holds a second YAML document (after ---); put everything in one document or split it into files")
		}
	}
	if err != nil {
		line, msg := yamlErrorLine(err)
		line = yamlProblemLine(data, msg, line)
		l.errs = append(l.errs, &LoadError{File: l.file, Line: line, Msg: "invalid YAML: " + msg + "; check the indentation and quoting around this line"})
		return
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return // an empty file defines nothing
	}
	root := doc.Content[0]
	l.mapping(root, "the file", []string{"offers", "scenarios"}, func(key string, v *yaml.Node) {
		if v.Kind != yaml.SequenceNode {
			l.errf(v, "%s must be a list (lines starting with -)", key)
			return
		}
		for _, item := range v.Content {
			if key == "offers" {
				if o := l.parseOffer(item); o != nil {
					l.offers = append(l.offers, o)
				}
			} else if d := l.parseScenario(item); d != nil {
				l.scenarios = append(l.scenarios, d)
			}
		}
	})
}

// yamlErrorLine splits a yaml.v3 syntax error, "yaml: line N: problem",
// into N and the problem. N is not where the problem is: the library
// reports the line of its context mark (where the enclosing block or flow
// collection, or the token being scanned, started), and for parser errors
// that line is 0-based, so a misindented key on line 17 of a list that
// starts on line 1 is reported as line 1. yamlProblemLine finds the line.
func yamlErrorLine(err error) (int, string) {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "yaml: line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				return n, strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return 0, strings.TrimPrefix(msg, "yaml: ")
}

// byteReader hands the YAML library one byte per read and counts them: the
// library reads only as far as it looks ahead, so when it fails the problem
// lies within the bytes read.
type byteReader struct {
	data []byte
	n    int
}

func (r *byteReader) Read(p []byte) (int, error) {
	if r.n == len(r.data) {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.data[r.n]
	r.n++
	return 1, nil
}

// yamlProblemLine returns the line of data on which the YAML problem msg
// is: the first line L such that the first L lines alone fail to parse with
// the same problem (a prefix that stops before the problem parses, or
// fails with another complaint about its cut-off end). The problem is not
// before the context line the library reported (from) and lies within the
// bytes the library had read when it failed, usually on the last line read
// or just before: the search starts there and walks back in growing steps,
// then bisects, a few parses rather than one per line.
func yamlProblemLine(data []byte, msg string, from int) int {
	var ends []int // ends[i]: the end of line i+1, after its newline
	for i, b := range data {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] < len(data) {
		ends = append(ends, len(data))
	}
	fails := func(lines int) bool {
		var n yaml.Node
		err := yaml.NewDecoder(bytes.NewReader(data[:ends[lines-1]])).Decode(&n)
		if err == nil || errors.Is(err, io.EOF) {
			return false
		}
		_, m := yamlErrorLine(err)
		return m == msg
	}
	lo := min(max(from, 1)-1, len(ends)-1) // lines taken to parse
	// hi: a prefix that fails, through the last line read or, should that
	// not reproduce the problem, the whole file (which is what failed).
	r := &byteReader{data: data}
	var n yaml.Node
	_ = yaml.NewDecoder(r).Decode(&n)
	hi, _ := slices.BinarySearch(ends, max(r.n, 1))
	hi++
	if hi <= lo || hi > len(ends) || !fails(hi) {
		hi = len(ends)
	}
	for step := 1; hi-lo > 1; step *= 2 {
		if hi-step <= lo {
			break
		}
		if !fails(hi - step) {
			lo = hi - step
			break
		}
		hi -= step
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// mapping walks a mapping node strictly: unknown and repeated keys are
// errors; fn sees each known key in file order.
func (l *loader) mapping(n *yaml.Node, what string, keys []string, fn func(key string, v *yaml.Node)) bool {
	if n.Kind == yaml.AliasNode {
		l.errf(n, "%s uses a YAML alias; write the values out (aliases are not supported)", what)
		return false
	}
	if n.Kind != yaml.MappingNode {
		l.errf(n, "%s must be a mapping of key: value lines", what)
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			l.errf(k, "%s has a key that is not a plain name", what)
			continue
		}
		if !slices.Contains(keys, k.Value) {
			l.errf(k, "unknown key %q in %s%s; remove it or use one of %s", k.Value, what, suggest(k.Value, keys), quoteList(keys))
			continue
		}
		if seen[k.Value] {
			l.errf(k, "key %q appears twice in %s; keep one", k.Value, what)
			continue
		}
		seen[k.Value] = true
		fn(k.Value, v)
	}
	return true
}

func (l *loader) str(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		l.errf(n, "%s must be a single value", what)
		return "", false
	}
	return n.Value, true
}

// integer reads a whole non-negative number (a priority, a count).
func (l *loader) integer(n *yaml.Node, what string) (int64, bool) {
	return l.wholeNumber(n, what, "e.g. 3")
}

// money reads an amount in minor units: the hint says so, which a
// priority's or a count's error must not.
func (l *loader) money(n *yaml.Node, what string) (int64, bool) {
	return l.wholeNumber(n, what, "money is in minor units (fen), e.g. 5000 for ¥50")
}

func (l *loader) wholeNumber(n *yaml.Node, what, hint string) (int64, bool) {
	s, ok := l.str(n, what)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil || v < 0 {
		l.errf(n, "%s %q is not a whole non-negative number; %s", what, excerpt(s), hint)
		return 0, false
	}
	return v, true
}

func (l *loader) boolean(n *yaml.Node, what string) (bool, bool) {
	s, ok := l.str(n, what)
	if !ok {
		return false, false
	}
	switch s {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	l.errf(n, "%s %q must be true or false", what, excerpt(s))
	return false, false
}

// parseDuration accepts Go durations ("48h", "90m") and days ("7d").
func parseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 || n > 3650 {
			return 0, fmt.Errorf("bad day count")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("bad duration")
	}
	return d, nil
}

func (l *loader) duration(n *yaml.Node, what string) (time.Duration, bool) {
	s, ok := l.str(n, what)
	if !ok {
		return 0, false
	}
	d, err := parseDuration(s)
	if err != nil {
		l.errf(n, "%s %q is not a positive duration; write e.g. 30m, 48h or 7d", what, excerpt(s))
		return 0, false
	}
	return d, true
}

// instant parses RFC 3339 or a date (YYYY-MM-DD, in China Standard Time).
// A date as an end bound means the end of that day.
func (l *loader) instant(n *yaml.Node, what string, end bool) (int64, bool) {
	s, ok := l.str(n, what)
	if !ok {
		return 0, false
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UnixMilli(), true
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, defaultLoc); err == nil {
		if end {
			t = t.AddDate(0, 0, 1)
		}
		return t.UnixMilli(), true
	}
	l.errf(n, "%s %q is not a date; write 2026-11-11 (China Standard Time) or 2026-11-11T20:00:00+08:00", what, excerpt(s))
	return 0, false
}

// servedChannelNames are the channels offers and scenarios may name.
var servedChannelNames = slices.DeleteFunc(slices.Clone(channelNames), func(n string) bool {
	ch, _ := features.ParseChannel(n)
	return !ServedChannels.Has(ch)
})

func (l *loader) channels(n *yaml.Node, what string) (features.ChannelMask, bool) {
	if n.Kind == yaml.ScalarNode && n.Value == "all" {
		return features.AllChannels, true
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		l.errf(n, "%s must be a non-empty list of channels such as [app, web] or all", what)
		return 0, false
	}
	var m features.ChannelMask
	ok := true
	for _, c := range n.Content {
		ch, valid := features.ParseChannel(c.Value)
		if c.Kind != yaml.ScalarNode || !valid {
			l.errf(c, "unknown channel %q in %s%s; use %s", c.Value, what, suggest(c.Value, servedChannelNames), quoteList(servedChannelNames))
			ok = false
			continue
		}
		if !ServedChannels.Has(ch) {
			l.errf(c, "channel %q in %s never shows an offer: events happen there, but /v1/decide refuses it and triggers send on push; use %s, or all", c.Value, what, quoteList(servedChannelNames))
			ok = false
			continue
		}
		m |= 1 << ch
	}
	return m, ok
}

// localized reads a {zh-CN: …, en: …} mapping; both locales are required.
func (l *loader) localized(n *yaml.Node, what string, out *[NumLocales]*yaml.Node) bool {
	keys := localeNames[:]
	ok := l.mapping(n, what, keys, func(key string, v *yaml.Node) {
		loc, _ := ParseLocale(key)
		if s, ok := l.str(v, what+" "+key); ok {
			if strings.TrimSpace(s) == "" {
				l.errf(v, "%s %s is empty; write the text", what, key)
				return
			}
			out[loc] = v
		}
	})
	if !ok {
		return false
	}
	for loc := ZhCN; loc < NumLocales; loc++ {
		if out[loc] == nil {
			l.errf(n, "%s has no %s text; every text needs both zh-CN and en", what, loc)
			ok = false
		}
	}
	return ok
}

func (l *loader) id(n *yaml.Node, what string) (string, bool) {
	s, ok := l.str(n, what)
	if !ok {
		return "", false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			l.errf(n, "%s %q may only use lower-case letters, digits, _ and -", what, excerpt(s))
			return "", false
		}
	}
	if s == "" || len(s) > 64 {
		l.errf(n, "%s must be 1 to 64 characters", what)
		return "", false
	}
	return s, true
}

var offerKeys = []string{"id", "type", "title", "text", "value", "cost", "channels", "stores", "valid_from", "valid_to", "phases", "budget", "cap", "cooldown", "requires_consent", "fulfilment", "prior", "category", "transactional", "untargeted"}

func (l *loader) parseOffer(n *yaml.Node) *Offer {
	o := &Offer{File: l.file, Line: n.Line, Prior: 0.05}
	what := fmt.Sprintf("the offer at line %d", n.Line)
	var title, text [NumLocales]*yaml.Node
	var phaseNodes [NumPhases]*yaml.Node
	var validNode, budgetNode *yaml.Node
	seen := map[string]bool{}
	l.mapping(n, "an offer", offerKeys, func(key string, v *yaml.Node) {
		seen[key] = true
		switch key {
		case "id":
			if s, ok := l.id(v, "offer id"); ok {
				o.ID = s
				what = fmt.Sprintf("offer %q", s)
			}
		case "type":
			if s, ok := l.str(v, what+" type"); ok {
				i := slices.Index(offerTypeNames[:], s)
				if i < 0 {
					l.errf(v, "unknown offer type %q%s; use %s", s, suggest(s, offerTypeNames[:]), quoteList(offerTypeNames[:]))
				} else {
					o.Type = OfferType(i)
				}
			}
		case "title":
			l.localized(v, what+" title", &title)
		case "text":
			l.localized(v, what+" text", &text)
		case "value":
			o.Value, _ = l.money(v, what+" value")
		case "cost":
			o.Cost, _ = l.money(v, what+" cost")
		case "channels":
			o.Channels, _ = l.channels(v, what+" channels")
		case "stores":
			if v.Kind == yaml.ScalarNode && v.Value == "all" {
				return
			}
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				l.errf(v, "%s stores must be a list of store IDs or all", what)
				return
			}
			o.Stores = []string{}
			for _, s := range v.Content {
				if id, ok := l.str(s, what+" store"); ok {
					o.Stores = append(o.Stores, id)
				}
			}
			sort.Strings(o.Stores)
		case "valid_from":
			o.Valid.From, _ = l.instant(v, what+" valid_from", false)
			validNode = v
		case "valid_to":
			o.Valid.To, _ = l.instant(v, what+" valid_to", true)
			validNode = v
		case "phases":
			l.mapping(v, what+" phases", phaseNames[1:], func(p string, pv *yaml.Node) {
				ph := Phase(slices.Index(phaseNames[:], p))
				phaseNodes[ph] = pv
				l.mapping(pv, what+" phase "+p, []string{"from", "to"}, func(k string, tv *yaml.Node) {
					if k == "from" {
						o.Phases[ph].From, _ = l.instant(tv, what+" phase "+p+" from", false)
					} else {
						o.Phases[ph].To, _ = l.instant(tv, what+" phase "+p+" to", true)
					}
				})
			})
		case "budget":
			budgetNode = v
			l.mapping(v, what+" budget", []string{"total", "per_store"}, func(k string, bv *yaml.Node) {
				if k == "total" {
					o.Budget.Total, _ = l.money(bv, what+" budget total")
				} else {
					o.Budget.PerStore, _ = l.money(bv, what+" budget per_store")
				}
			})
		case "cap":
			var hasCount, hasPeriod bool
			if l.mapping(v, what+" cap", []string{"count", "period"}, func(k string, cv *yaml.Node) {
				// Present is enough here: a bad value has its own error.
				if k == "count" {
					n, ok := l.integer(cv, what+" cap count")
					o.Cap.Count, hasCount = int(min(n, math.MaxInt32)), true
					if ok && n == 0 {
						// Cap{} (no cap: key) is uncapped: "0 per 7d"
						// would silently mean "any number", not "never".
						l.errf(cv, "%s cap count is 0; a cap allows 1 or more per period — remove cap: for no per-customer cap, or remove the offer (or end it with valid_to) to stop giving it", what)
					}
				} else {
					o.Cap.Period, _ = l.duration(cv, what+" cap period")
					hasPeriod = true
				}
			}) && (!hasCount || !hasPeriod) {
				l.errf(v, "%s cap needs both count and period, e.g. {count: 1, period: 7d}", what)
			}
		case "cooldown":
			o.Cooldown, _ = l.duration(v, what+" cooldown")
		case "requires_consent":
			if s, ok := l.str(v, what+" requires_consent"); ok {
				p, valid := features.ParsePurpose(s)
				if !valid {
					l.errf(v, "unknown consent purpose %q%s; use %s", s, suggest(s, purposeNames), quoteList(purposeNames))
				}
				o.RequiresConsent, o.ConsentPurpose = valid, p
			}
		case "fulfilment":
			if s, ok := l.str(v, what+" fulfilment"); ok {
				i := slices.Index(fulfilmentNames[:], s)
				if i < 0 {
					l.errf(v, "unknown fulfilment %q%s; use %s", s, suggest(s, fulfilmentNames[:]), quoteList(fulfilmentNames[:]))
				} else {
					o.Fulfilment = Fulfilment(i)
				}
			}
		case "prior":
			if s, ok := l.str(v, what+" prior"); ok {
				f, err := strconv.ParseFloat(s, 64)
				if err != nil || f < 0 || f > 1 || math.IsNaN(f) {
					l.errf(v, "%s prior %q must be a probability between 0 and 1", what, excerpt(s))
				} else {
					o.Prior = f
				}
			}
		case "category":
			o.Category, _ = l.str(v, what+" category")
		case "transactional":
			o.Transactional, _ = l.boolean(v, what+" transactional")
		case "untargeted":
			o.Untargeted, _ = l.boolean(v, what+" untargeted")
		}
	})
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for _, req := range []string{"id", "type", "title", "text", "channels"} {
		if !seen[req] {
			l.errf(n, "%s has no %s; add it", what, req)
		}
	}
	for loc := ZhCN; loc < NumLocales; loc++ {
		if title[loc] != nil {
			o.Title[loc] = title[loc].Value
		}
		if text[loc] != nil {
			o.Text[loc] = text[loc].Value
		}
	}
	// A budget is money each issued offer spends its cost from: on an
	// offer that costs nothing it would never bind, and one smaller than
	// the cost would never let the offer out.
	switch b := o.Budget; {
	case budgetNode == nil || b.Total <= 0 && b.PerStore <= 0:
	case o.Cost <= 0:
		l.errf(budgetNode, "%s has a budget but costs nothing, so the budget would never bind; set its cost (minor units each issued offer spends) or remove the budget", what)
	case b.Total > 0 && b.Total < o.Cost || b.PerStore > 0 && b.PerStore < o.Cost:
		l.errf(budgetNode, "%s budget is smaller than its cost %d, so it could never be given; budgets are money in minor units (e.g. total: %d for 100 offers)", what, o.Cost, 100*o.Cost)
	}
	if o.Valid.From != 0 && o.Valid.To != 0 && o.Valid.To <= o.Valid.From {
		l.errf(validNode, "%s valid_to is not after valid_from; the offer could never be given — fix the dates", what)
	}
	for p := Preheat; p < NumPhases; p++ {
		s, pn := o.Phases[p], phaseNodes[p]
		if pn == nil {
			continue
		}
		switch {
		case s.From == 0 || s.To == 0:
			l.errf(pn, "%s phase %s needs both from and to", what, p)
		case s.To <= s.From:
			l.errf(pn, "%s phase %s ends before it starts; fix from and to", what, p)
		case !o.Valid.Contains(s.From) || (o.Valid.To != 0 && s.To > o.Valid.To):
			l.errf(pn, "%s phase %s lies outside valid_from..valid_to; move the phase inside the validity window or widen it", what, p)
		}
		for q := Preheat; q < p; q++ {
			if r := o.Phases[q]; r != (Span{}) && s != (Span{}) && s.From < r.To && r.From < s.To {
				l.errf(pn, "%s phase %s overlaps phase %s; phases follow each other (preheat, burst, long_tail)", what, p, q)
			}
		}
	}
	if o.ID == "" {
		return nil
	}
	return o
}

var scenarioKeys = []string{"id", "description", "when", "after", "absent", "for_each", "offers", "channels", "trigger", "priority", "reason"}

var triggerNames = []string{"on_request", "on_event", "both"}

func (l *loader) parseScenario(n *yaml.Node) *scenarioDef {
	sc := &Scenario{File: l.file, Line: n.Line}
	d := &scenarioDef{sc: sc}
	what := fmt.Sprintf("the scenario at line %d", n.Line)
	seen := map[string]bool{}
	var afterN, absentN *yaml.Node
	l.mapping(n, "a scenario", scenarioKeys, func(key string, v *yaml.Node) {
		seen[key] = true
		switch key {
		case "id":
			if s, ok := l.id(v, "scenario id"); ok {
				sc.ID = s
				what = fmt.Sprintf("scenario %q", s)
			}
		case "description":
			sc.Description, _ = l.str(v, what+" description")
		case "when":
			if _, ok := l.str(v, what+" when"); ok {
				d.when = v
			}
		case "after":
			afterN = v
		case "absent":
			absentN = v
		case "for_each":
			if s, ok := l.str(v, what+" for_each"); ok {
				i := slices.Index(forEachNames[:], s)
				if i <= 0 {
					l.errf(v, "unknown for_each source %q%s; use %s", s, suggest(s, forEachNames[1:]), quoteList(forEachNames[1:]))
				} else {
					sc.ForEach = ForEach(i)
				}
			}
		case "offers":
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				l.errf(v, "%s offers must be a non-empty list of offer ids", what)
				return
			}
			for _, r := range v.Content {
				if _, ok := l.str(r, what+" offer"); ok {
					d.offerRefs = append(d.offerRefs, r)
				}
			}
		case "channels":
			sc.Channels, _ = l.channels(v, what+" channels")
		case "trigger":
			if s, ok := l.str(v, what+" trigger"); ok {
				switch s {
				case "on_request":
					sc.Trigger = OnRequest
				case "on_event":
					sc.Trigger = OnEvent
				case "both":
					sc.Trigger = Both
				default:
					l.errf(v, "unknown trigger %q%s; use %s", s, suggest(s, triggerNames), quoteList(triggerNames))
				}
			}
		case "priority":
			if p, ok := l.integer(v, what+" priority"); ok {
				if p > 1000 {
					l.errf(v, "%s priority %d is out of range; use 0..1000", what, p)
				}
				sc.Priority = int(min(p, 1000))
			}
		case "reason":
			d.hasReason = l.localized(v, what+" reason", &d.reason)
		}
	})
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for _, req := range []string{"id", "offers", "channels", "trigger", "reason"} {
		if !seen[req] {
			l.errf(n, "%s has no %s; add it", what, req)
		}
	}
	switch {
	case afterN != nil && absentN != nil:
		sc.Sequence = l.parseSequence(afterN, absentN, what, sc.ForEach)
	case afterN != nil:
		l.errf(afterN, "%s has after: but no absent:; a sequence is \"after A, no B within d\" — add absent: {types: [...], within: 48h}", what)
	case absentN != nil:
		l.errf(absentN, "%s has absent: but no after:; say what starts the window with after: {types: [...]}", what)
	}
	if sc.ID == "" {
		return nil
	}
	return d
}

func (l *loader) eventTypes(n *yaml.Node, what string) []features.EventType {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		l.errf(n, "%s types must be a non-empty list of event types such as [order, pos_purchase]", what)
		return nil
	}
	var out []features.EventType
	for _, t := range n.Content {
		et, ok := features.ParseEventType(t.Value)
		if t.Kind != yaml.ScalarNode || !ok {
			l.errf(t, "unknown event type %q in %s%s; the types are those of the event schema (product_view, order, pos_purchase, …)", t.Value, what, suggest(t.Value, typeNames))
			continue
		}
		out = append(out, et)
	}
	return out
}

// maxViewedNotBoughtAbsent is the longest absent window a scenario over
// viewed-not-bought items can close while its item is still listed.
const maxViewedNotBoughtAbsent = 29 * 24 * time.Hour

func (l *loader) parseSequence(afterN, absentN *yaml.Node, what string, fe ForEach) *Sequence {
	q := &Sequence{AfterClass: classAny}
	ok := true
	var hasAbsentWithin bool
	l.mapping(afterN, what+" after", []string{"types", "class", "category", "within"}, func(k string, v *yaml.Node) {
		switch k {
		case "types":
			q.After = l.eventTypes(v, what+" after")
		case "class":
			if s, valid := l.str(v, what+" after class"); valid {
				c, good := parseClass(s)
				if !good {
					l.errf(v, "unknown class %q in %s after; use %s", s, what, quoteList(classNames))
					ok = false
				}
				q.AfterClass = c
			}
		case "category":
			if s, valid := l.str(v, what+" after category"); valid {
				switch {
				case s == "each" && fe != EachViewedNotBought && fe != EachCart && fe != EachVisitCategory:
					l.errf(v, "%s after category: each needs for_each viewed_not_bought, cart or visit_categories", what)
					ok = false
				case s == "each":
					q.EachCategory = true
				case s != "any":
					q.AfterCategory = s
				}
			}
		case "within":
			q.AfterWithin, _ = l.duration(v, what+" after within")
		}
	})
	l.mapping(absentN, what+" absent", []string{"types", "within", "category"}, func(k string, v *yaml.Node) {
		switch k {
		case "types":
			q.Absent = l.eventTypes(v, what+" absent")
		case "within":
			q.AbsentWithin, hasAbsentWithin = l.duration(v, what+" absent within")
		case "category":
			if s, valid := l.str(v, what+" absent category"); valid {
				switch s {
				case "same":
					q.SameCategory = true
				case "any":
				default:
					l.errf(v, "%s absent category %q must be same or any", what, excerpt(s))
				}
			}
		}
	})
	if len(q.After) == 0 && afterN.Kind == yaml.MappingNode {
		l.errf(afterN, "%s after needs types: [...]", what)
		ok = false
	}
	if len(q.Absent) == 0 && absentN.Kind == yaml.MappingNode {
		l.errf(absentN, "%s absent needs types: [...]", what)
		ok = false
	}
	if !hasAbsentWithin && absentN.Kind == yaml.MappingNode {
		l.errf(absentN, "%s absent needs within: (how long B must stay absent, e.g. 48h)", what)
		ok = false
	}
	// A viewed-not-bought item is listed for 30 days after its newest
	// view (29 full days of the 30-day window), and the window cannot
	// close before absent within has passed since the item's newest view.
	if (fe == EachViewedNotBought || fe == EachViewedNotBoughtSKU) && q.AbsentWithin > maxViewedNotBoughtAbsent {
		l.errf(absentN, "%s absent within %s is longer than %s, but for_each %s lists an item only for 30 days after its newest view: the item is gone before the window closes and the scenario could never fire — make absent within %s or less", what, formatDuration(q.AbsentWithin), formatDuration(maxViewedNotBoughtAbsent), forEachNames[fe], formatDuration(maxViewedNotBoughtAbsent))
		ok = false
	}
	if q.AfterWithin > 0 && q.AbsentWithin >= q.AfterWithin {
		l.errf(afterN, "%s after within %s is not longer than absent within %s; the window could never close in time — make after within longer", what, formatDuration(q.AfterWithin), formatDuration(q.AbsentWithin))
		ok = false
	}
	if !ok {
		return nil
	}
	return q
}

func isItemField(i int) bool { return isItemName(reflectName(i)) }

func isItemName(name string) bool {
	switch name {
	case "category", "sku", "views", "item_hours_ago", "distinct_skus", "compared_skus":
		return true
	}
	return false
}
