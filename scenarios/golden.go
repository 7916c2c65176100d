package scenarios

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"nbo/features"
)

// Golden files specify rule behaviour as data: "these events at these
// times → at this moment, on this channel, these scenarios fire and
// propose these offers, for these reasons". A file is a sequence of cases
// in the style of cockroachdb's datadriven tests:
//
//	# a comment
//	events
//	2026-11-20T10:00:00+08:00 app product_view member=M1 category=phones sku=P1
//	----
//	ok
//
//	decide at=2026-11-22T11:00:00+08:00 channel=app member=M1
//	----
//	browsed_online_not_bought [phones] → instore_trial_coupon (priority 60)
//	  zh-CN: …
//	  en: …
//
// Commands:
//   - events: one event per line, "TS CHANNEL TYPE key=value…"; keys are
//     the identifier namespaces (member, card, phone, email, device), sku,
//     category, store, amount, quantity, dwell_s, offer_id, query, the
//     consent attributes purpose, granted and channels, and attr.NAME for
//     any other attribute; an unknown key is an error.
//     Events go through a real features.Store, one per file.
//   - decide at=TS channel=CH <id>=… [store=S] [placement=P]
//     [trigger=on_request|on_event] [score=name:value,…]
//     [stock=store:sku,…] (no stock= means every store stocks everything;
//     stock=none means nothing is in stock): the offers proposed, and the
//     ones the eligibility rules blocked, marked ✗ with the reason code.
//   - wake at=TS <id>=…: the next absence timer (NextWake) after TS.
//
// RunGolden returns the file with every expected block recomputed; the
// test (go test ./scenarios -rewrite) and `nbo rules test DIR --rewrite` write
// it back, and reviewers read the diff.
func RunGolden(set *Set, data []byte) ([]byte, error) {
	store, err := features.NewStore(features.Options{})
	if err != nil {
		return nil, fmt.Errorf("golden: creating the feature store: %w", err)
	}
	g := &golden{set: set, store: store}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	lineNo := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		lineNo++
		return sc.Text(), true
	}
	for {
		line, ok := next()
		if !ok {
			break
		}
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			out.WriteString(line + "\n")
			continue
		}
		cmdLine := lineNo
		cmd := line
		var input []string
		sep := false
		for {
			l, ok := next()
			if !ok {
				break
			}
			if l == "----" {
				sep = true
				break
			}
			input = append(input, l)
		}
		if !sep {
			return nil, fmt.Errorf("golden: line %d: %q has no ---- separator", cmdLine, cmd)
		}
		// Skip the old expected block: up to a blank line or the end.
		for {
			l, ok := next()
			if !ok || l == "" {
				break
			}
		}
		result, err := g.run(cmd, input, cmdLine)
		if err != nil {
			errLine := cmdLine
			var le *lineError
			if errors.As(err, &le) {
				errLine, err = le.line, le.err
			}
			return nil, fmt.Errorf("golden: line %d: %w", errLine, err)
		}
		out.WriteString(cmd + "\n")
		for _, l := range input {
			out.WriteString(l + "\n")
		}
		out.WriteString("----\n")
		out.WriteString(result)
		out.WriteString("\n")
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("golden: reading: %w", err)
	}
	return append(bytes.TrimRight(out.Bytes(), "\n"), '\n'), nil
}

// lineError is a problem on one input line of a command (an event), not
// on the command's own line.
type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string { return e.err.Error() }
func (e *lineError) Unwrap() error { return e.err }

type golden struct {
	set   *Set
	store *features.Store
	view  features.View
	seq   int
}

func parseArgs(fields []string) (map[string]string, error) {
	args := map[string]string{}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("argument %q is not key=value", f)
		}
		args[k] = v
	}
	return args, nil
}

func parseTS(s string) (int64, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, fmt.Errorf("time %q is not RFC 3339 (2026-11-20T10:00:00+08:00)", s)
	}
	return t.UnixMilli(), nil
}

func formatTS(ms int64) string { return time.UnixMilli(ms).In(defaultLoc).Format(time.RFC3339) }

// takeIDs moves identifier arguments into ids.
func takeIDs(args map[string]string, ids *features.IDs) {
	for ns := features.NSMember; ns < features.NumNamespaces; ns++ {
		if v, ok := args[ns.String()]; ok {
			ids.Set(ns, v)
			delete(args, ns.String())
		}
	}
}

func (g *golden) run(cmd string, input []string, line int) (string, error) {
	fields := strings.Fields(cmd)
	args, err := parseArgs(fields[1:])
	if err != nil {
		return "", err
	}
	switch fields[0] {
	case "events":
		return g.events(input, line)
	case "decide":
		return g.decide(args)
	case "wake":
		return g.wake(args)
	}
	return "", fmt.Errorf("unknown command %q; use events, decide or wake", fields[0])
}

func (g *golden) events(input []string, line int) (string, error) {
	var b strings.Builder
	for i, l := range input {
		ev, ok, err := g.event(l)
		if err != nil {
			return "", &lineError{line: line + 1 + i, err: err}
		}
		if !ok {
			continue
		}
		if _, rej := g.store.Apply(ev); rej != nil {
			fmt.Fprintf(&b, "line %d: rejected %s: %s\n", line+1+i, rej.Code, rej.Message)
		}
	}
	if b.Len() == 0 {
		return "ok\n", nil
	}
	return b.String(), nil
}

// event parses one events line; ok is false for a blank or comment line.
func (g *golden) event(l string) (ev *features.Event, ok bool, err error) {
	fields := strings.Fields(l)
	if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
		return nil, false, nil
	}
	if len(fields) < 3 {
		return nil, false, fmt.Errorf("event %q needs TS CHANNEL TYPE key=value…", l)
	}
	ts, err := parseTS(fields[0])
	if err != nil {
		return nil, false, err
	}
	ch, ok := features.ParseChannel(fields[1])
	if !ok {
		return nil, false, fmt.Errorf("unknown channel %q", fields[1])
	}
	typ, ok := features.ParseEventType(fields[2])
	if !ok {
		return nil, false, fmt.Errorf("unknown event type %q", fields[2])
	}
	args, err := parseArgs(fields[3:])
	if err != nil {
		return nil, false, err
	}
	g.seq++
	ev = &features.Event{ID: "golden-" + strconv.Itoa(g.seq), TS: ts, Type: typ, Channel: ch}
	takeIDs(args, &ev.IDs)
	for k, v := range args {
		switch k {
		case "sku":
			ev.SKU = v
		case "category":
			ev.Category = v
		case "store":
			ev.Store = v
		case "offer_id":
			ev.OfferID = v
		case "query":
			ev.Query = v
		case "amount", "quantity", "dwell_s":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, false, fmt.Errorf("%s=%q is not a number", k, v)
			}
			switch k {
			case "amount":
				ev.Amount = n
			case "quantity":
				ev.Quantity = int32(n)
			default:
				ev.DwellS = int32(n)
			}
		case "purpose", "granted", "channels":
			if ev.Attrs == nil {
				ev.Attrs = map[string]string{}
			}
			ev.Attrs[k] = v
		default:
			name, ok := strings.CutPrefix(k, "attr.")
			if !ok {
				return nil, false, fmt.Errorf("unknown event field %q; use member, card, phone, email, device, sku, category, store, amount, quantity, dwell_s, offer_id, query, purpose, granted, channels or attr.NAME", k)
			}
			if ev.Attrs == nil {
				ev.Attrs = map[string]string{}
			}
			ev.Attrs[name] = v
		}
	}
	return ev, true, nil
}

func (g *golden) decide(args map[string]string) (string, error) {
	var ids features.IDs
	takeIDs(args, &ids)
	req := Request{Trigger: OnRequest}
	for k, v := range args {
		switch k {
		case "at":
			ts, err := parseTS(v)
			if err != nil {
				return "", err
			}
			req.Now = ts
		case "channel":
			ch, ok := features.ParseChannel(v)
			if !ok {
				return "", fmt.Errorf("unknown channel %q", v)
			}
			req.Channel = ch
		case "store":
			req.Store = v
		case "placement":
			req.Placement = v
		case "trigger":
			switch v {
			case "on_request":
				req.Trigger = OnRequest
			case "on_event":
				req.Trigger = OnEvent
			default:
				return "", fmt.Errorf("trigger %q must be on_request or on_event", v)
			}
		case "score":
			scores := map[string]float64{}
			for _, kv := range strings.Split(v, ",") {
				name, val, _ := strings.Cut(kv, ":")
				f, err := strconv.ParseFloat(val, 64)
				if err != nil {
					return "", fmt.Errorf("score %q is not name:value", kv)
				}
				scores[name] = f
			}
			req.Score = func(name string) (float64, bool) { s, ok := scores[name]; return s, ok }
		case "stock":
			stock := map[string]bool{}
			if v != "none" {
				for _, kv := range strings.Split(v, ",") {
					stock[kv] = true
				}
			}
			req.InStock = func(store, sku string) bool { return stock[store+":"+sku] }
		default:
			return "", fmt.Errorf("unknown decide argument %q", k)
		}
	}
	if req.Now == 0 || req.Channel == features.ChannelUnknown {
		return "", fmt.Errorf("decide needs at= and channel=")
	}
	g.store.ViewAt(&ids, req.Now, &g.view)
	props := g.set.Explain(&g.view, &req)
	if len(props) == 0 {
		return "(no offers)\n", nil
	}
	var b strings.Builder
	for i := range props {
		p := &props[i]
		item := ""
		if p.Item != "" {
			item = " [" + p.Item + "]"
		}
		if p.Blocked != Eligible {
			fmt.Fprintf(&b, "%s%s ✗ %s: %s\n", p.Scenario.ID, item, p.Offer.ID, p.Blocked)
			continue
		}
		fmt.Fprintf(&b, "%s%s → %s (priority %d)\n", p.Scenario.ID, item, p.Offer.ID, p.Priority)
		for loc := ZhCN; loc < NumLocales; loc++ {
			fmt.Fprintf(&b, "  %s: %s\n", loc, g.set.Reason(p, &g.view, &req, loc))
		}
	}
	return b.String(), nil
}

func (g *golden) wake(args map[string]string) (string, error) {
	var ids features.IDs
	takeIDs(args, &ids)
	ts, err := parseTS(args["at"])
	if err != nil {
		return "", err
	}
	g.store.ViewAt(&ids, ts, &g.view)
	w := g.set.NextWake(&g.view, ts)
	if w.At == 0 {
		return "no timer\n", nil
	}
	item := ""
	if w.Item != "" {
		item = " [" + w.Item + "]"
	}
	return fmt.Sprintf("%s %s%s\n", formatTS(w.At), w.Scenario.ID, item), nil
}
