package scenarios

import (
	"testing"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/stretchr/testify/require"
)

// TestRewriteKeepsMeaning compiles expressions twice, with the loader's
// rewriter (slots, typed reads, folded comparisons) and as plain expr over
// the same environment (reflection, functions parsing their arguments at
// run time), and checks both agree on a busy customer for every for_each
// item, with and without a model score.
func TestRewriteKeepsMeaning(t *testing.T) {
	exprs := []string{
		`orders >= 1`, `orders > 1`, `orders == 1`, `orders != 1`, `orders < 1`, `orders <= 0`,
		`spend_offline >= 500000`, `spend_offline >= 600000.5`, `recency_days > -1`, `member_days == -1`,
		`member && known`, `!visit_purchased`, `visit_weekend || weekend`,
		`home_store != ""`, `home_store == ""`, `pickup_store == "S01"`, `category != ""`, `sku == ""`,
		`count("product_view", "online", "30d") >= 10`, `count("product_view", "any", "lifetime") == 60`,
		`count("product_view", "online", "7d", category) >= 2`, `count("product_view", "online", "7d", "baby") > 3`,
		`count("product_view", "online", "7d", home_store) == 0`, `sum("pos_purchase", "offline", "30d") > 100000`,
		`sum("dwell", "offline", "24h", "baby") >= 1500`, `count("search", "online", "1h") + count("order", "any", "30d") == 0`,
		`evening_count("search", "baby") >= 2`, `evening_count("search", category) >= 1`,
		`score("purchase_15d") >= 0.6`, `score("purchase_15d") < 0`, `score("other") == -1`,
		`in_stock(sku)`, `in_cart(category)`, `viewed(category)`, `visited_category(category)`, `in_cart("shoes")`,
		`has_consent("marketing", "app")`, `has_consent("location", channel)`,
		`hours_since("order") < 0 && days_since("pos_purchase") >= 0`,
		`views >= 2 && item_hours_ago < 48 && distinct_skus >= 2`, `compared_skus != ""`,
		`hour >= 18 && weekday != 3 || evening`, `online_share_pct < 20`, `redeemed("winback_coupon") == 0`,
		`let n = count("product_view", "online", "30d"); n > 5 && n < 100`,
		`all(1..3, # < orders + 5)`,
	}
	v, req := busyView(t)
	c := &exprCompiler{}
	type pair struct {
		src            string
		patched, plain *vm.Program
	}
	var pairs []pair
	for _, src := range exprs {
		p, probs := c.compile(src, EachViewedNotBought)
		require.Empty(t, probs, src)
		opts := []expr.Option{expr.Env(Env{}), expr.AsBool()}
		for _, b := range disabledBuiltins {
			opts = append(opts, expr.DisableBuiltin(b))
		}
		plain, err := expr.Compile(src, opts...)
		require.NoError(t, err, src)
		pairs = append(pairs, pair{src, p, plain})
	}
	set := &Set{slots: c.slots, cmps: c.cmps}
	for _, score := range []func(string) (float64, bool){nil, func(n string) (float64, bool) { return 0.7, n == "purchase_15d" }} {
		r := *req
		r.Score = score
		r.InStock = func(store, sku string) bool { return sku == "HD-1" }
		for _, src := range []ForEach{EachViewedNotBought, EachCart} {
			st := newEvalState(set)
			st.fill(v, &r)
			for i := 0; i < items(src, v); i++ {
				st.setItem(src, i)
				var m vm.VM
				for _, p := range pairs {
					a, err := m.Run(p.patched, &st.env)
					require.NoError(t, err, p.src)
					b, err := m.Run(p.plain, &st.env)
					require.NoError(t, err, p.src)
					require.Equal(t, b, a, "%s for %s item %d", p.src, src, i)
				}
			}
		}
	}
	// The busy customer makes both outcomes happen, so agreement is not
	// trivially "always false".
	st := newEvalState(set)
	st.fill(v, req)
	var m vm.VM
	trues := 0
	for _, p := range pairs {
		r, _ := m.Run(p.plain, &st.env)
		if r == true {
			trues++
		}
	}
	require.Greater(t, trues, 10)
	require.Less(t, trues, len(pairs)-5)
}
