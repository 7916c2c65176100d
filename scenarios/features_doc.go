package scenarios

import (
	"fmt"
	"reflect"
	"strings"
)

// FeaturesMarkdown renders the expression environment as the reference
// FEATURES.md: every feature and function with its type and meaning,
// straight from Env's tags so the document cannot drift from the code.
func FeaturesMarkdown() string {
	var b strings.Builder
	b.WriteString("# Scenario features\n\n")
	b.WriteString("<!-- Generated from scenarios.Env by `go test ./scenarios -rewrite`; do not edit. -->\n\n")
	b.WriteString("Scenario `when` expressions ([expr-lang/expr](https://expr-lang.org) syntax) and reason\n")
	b.WriteString("templates (`{name}` placeholders, scalars only, plus `{offer}` for the offer's title) read\n")
	b.WriteString("these names. Money is in minor units (fen). \"Local time\" (`hour`, `weekday`, `weekend`,\n")
	b.WriteString("`evening`, `visit_hour`, `visit_weekend`, `evening_count`) is the engine's one time zone,\n")
	b.WriteString("`nbo serve --time-zone` (`time_zone`, default Asia/Shanghai), for every request with or\n")
	b.WriteString("without a store: a request carries no zone, and `--store-time-zones` sets only each store's\n")
	b.WriteString("quiet hours. Golden files (`nbo rules test`) use China Standard Time (UTC+8). Unknown names,\n")
	b.WriteString("wrong types and non-constant event types, classes, windows or purposes are load errors.\n")
	b.WriteString("The expr builtins `" + strings.Join(disabledBuiltins, "`, `") + "` are disabled\n")
	b.WriteString(fmt.Sprintf("(count and sum are the counters below; rules use the request's time, never the wall clock).\nLimits: %d AST nodes, ranges of at most %d elements with constant bounds, %d iteration steps.\n\n", maxNodes, maxRange, maxIterations))
	t := reflect.TypeFor[Env]()
	section := ""
	sections := map[string]string{
		"known": "Customer", "visit_store": "The newest store visit", "channel": "Request context",
		"category": "The for_each item", "count": "Functions",
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, doc := f.Tag.Get("expr"), f.Tag.Get("doc")
		if name == "" || doc == "" {
			continue
		}
		if s, ok := sections[name]; ok && s != section {
			section = s
			fmt.Fprintf(&b, "\n## %s\n\n| name | type | meaning |\n|---|---|---|\n", s)
		}
		typ := f.Type.String()
		if f.Type.Kind() == reflect.Func {
			typ = "function"
			if f.Type.NumOut() == 1 {
				typ = "→ " + f.Type.Out(0).String()
			}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", name, typ, strings.ReplaceAll(doc, "|", "\\|"))
	}
	b.WriteString("\n## for_each sources\n\n")
	b.WriteString("| source | binds |\n|---|---|\n")
	b.WriteString("| `viewed_not_bought` | `category`, `views`, `item_hours_ago`, `distinct_skus`, `compared_skus` |\n")
	b.WriteString("| `viewed_not_bought_sku` | `sku`, `category` (from the recent events), `views`, `item_hours_ago` |\n")
	b.WriteString("| `cart` | `sku`, `category`, `views` (quantity), `item_hours_ago` |\n")
	b.WriteString("| `visit_categories` | `category` |\n")
	b.WriteString("\n## Sequences (after / absent)\n\n")
	b.WriteString("`after: {types: [...], class: online|offline|any, category: NAME|each|any, within: 7d}` and\n")
	b.WriteString("`absent: {types: [...], within: 48h, category: same|any}`: the newest `after` event, then no\n")
	b.WriteString("`absent` event on any channel for `within`. The scenario can fire once the window has closed;\n")
	b.WriteString("`Set.NextWake` tells the engine when that is, so push triggers fire on time: while `serve` is\n")
	b.WriteString("live, within about a second of the window closing, even when no other event arrives; while it\n")
	b.WriteString("catches up or replays the log, in event time (when the log's event time passes the close).\n")
	b.WriteString("\nHow far back they see: the newest event of each type, and of each category, class and type,\n")
	b.WriteString("is kept for the customer's lifetime, so a long `within` (e.g. 90d) is honoured. Two limits:\n")
	b.WriteString("`for_each: viewed_not_bought` and `viewed_not_bought_sku` list an item only for 30 days after\n")
	b.WriteString("its newest view, so there keep an `absent` `within` to 29d or less (a longer window may close\n")
	b.WriteString("after the item is gone, and past 30d always does: the scenario then never fires) and an\n")
	b.WriteString("`after` `within` over 30d acts as 30d; and with `class: online` or `offline` and no category,\n")
	b.WriteString("events that carry no category are only seen among the customer's last 8 events.\n")
	return b.String()
}
