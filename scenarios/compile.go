package scenarios

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"nbo/features"
)

// Static limits on expressions, checked at load so a rule cannot hurt the
// service: the AST size, the size of any range, and the number of
// iteration steps an expression can take in the worst case. At run time
// the VM's memory budget (runMemoryBudget) bounds the rest.
const (
	maxNodes      = 400
	maxRange      = 1_000
	maxIterations = 10_000
)

// envNames lists the names an expression may use, for suggestions.
var envNames = func() []string {
	var names []string
	t := reflect.TypeFor[Env]()
	for i := 0; i < t.NumField(); i++ {
		if n := t.Field(i).Tag.Get("expr"); n != "" && !strings.HasPrefix(n, "_") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}()

// disabledBuiltins are expr builtins a rule may not use: count and sum are
// ours (event counters), now would make rules depend on the wall clock
// instead of the request's time, and repeat builds unbounded strings.
var disabledBuiltins = []string{"count", "sum", "now", "repeat", "date", "timezone", "fromJSON", "toJSON"}

// exprCompiler compiles expressions against Env, resolving counter calls
// into slots of the set being built.
type exprCompiler struct {
	slots   []slot
	slotIdx map[slot]int
	cmps    []cmpSlot
	// needCompared: some expression reads compared_skus, which costs a
	// string concatenation per item, so it is otherwise only computed for
	// reasons.
	needCompared bool
}

// exprProblem is one problem in an expression, at a 1-based line and
// column of the expression source.
type exprProblem struct {
	line, col int
	msg       string
}

func (c *exprCompiler) addSlot(s slot) int {
	if i, ok := c.slotIdx[s]; ok {
		return i
	}
	if c.slotIdx == nil {
		c.slotIdx = map[slot]int{}
	}
	c.slots = append(c.slots, s)
	c.slotIdx[s] = len(c.slots) - 1
	return len(c.slots) - 1
}

// compile checks src and returns its program, or every problem found.
func (c *exprCompiler) compile(src string, forEach ForEach) (*vm.Program, []exprProblem) {
	p := &patcher{c: c, forEach: forEach, src: src}
	opts := []expr.Option{
		expr.Env(Env{}),
		expr.AsBool(),
		expr.MaxNodes(maxNodes),
		expr.Patch(&costChecker{p: p}),
		expr.Patch(p),
	}
	for _, b := range disabledBuiltins {
		opts = append(opts, expr.DisableBuiltin(b))
	}
	prog, err := expr.Compile(src, opts...)
	probs := p.problems
	if err != nil {
		// The checker stops at its first error; ours come from the
		// rewriter, which sees every call. Keep both unless they are the
		// same spot.
		tp := translate(err)
		dup := false
		for _, q := range probs {
			dup = dup || (q.line == tp.line && q.col == tp.col)
		}
		if !dup {
			probs = append(probs, tp)
		}
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return prog, nil
}

// translate turns an expr error into a problem a marketer can act on.
func translate(err error) exprProblem {
	msg := err.Error()
	pr := exprProblem{line: 1, col: 1}
	var fe *file.Error
	if errors.As(err, &fe) {
		msg = fe.Message
		pr.line, pr.col = max(fe.Line, 1), fe.Column+1
	}
	switch {
	case strings.HasPrefix(msg, "unknown name "):
		name := strings.TrimPrefix(msg, "unknown name ")
		pr.msg = fmt.Sprintf("unknown feature %q%s; the features are listed in scenarios/FEATURES.md", name, suggest(name, envNames))
	case strings.HasPrefix(msg, "expected bool, but got "):
		pr.msg = fmt.Sprintf("the condition must be true or false but is %s; compare it, e.g. `orders > 0`", strings.TrimPrefix(msg, "expected bool, but got "))
	case strings.Contains(msg, "exceeds maximum allowed nodes"):
		pr.msg = fmt.Sprintf("the expression is too large (more than %d nodes); split the rule or simplify it", maxNodes)
	case strings.HasPrefix(msg, "unexpected token EOF"):
		pr.msg = "the expression ends too early; close every bracket and quote the whole expression if it contains # (YAML starts a comment there)"
	default:
		pr.msg = msg + "; check the types of the features used (scenarios/FEATURES.md)"
	}
	return pr
}

// patcher validates the constant arguments of the helper functions and
// rewrites counter calls into slot reads.
type patcher struct {
	c        *exprCompiler
	forEach  ForEach
	src      string
	lets     map[string]bool // names bound by let, never rewritten
	problems []exprProblem
}

// position turns a rune offset of src into a 1-based line and column.
func position(src string, offset int) (line, col int) {
	line, col = 1, 1
	n := 0
	for _, r := range src {
		if n == offset {
			break
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		n++
	}
	return line, col
}

func (p *patcher) problem(n ast.Node, format string, args ...any) {
	line, col := position(p.src, n.Location().From)
	p.problems = append(p.problems, exprProblem{line: line, col: col, msg: fmt.Sprintf(format, args...)})
}

func (p *patcher) constString(n ast.Node, what, fn string, valid func(string) bool, names []string) (string, bool) {
	s, ok := n.(*ast.StringNode)
	if !ok {
		p.problem(n, "the %s argument of %s must be a quoted constant such as %q", what, fn, names[0])
		return "", false
	}
	if !valid(s.Value) {
		p.problem(n, "unknown %s %q in %s%s; use one of %s", what, s.Value, fn, suggest(s.Value, names), quoteList(names))
		return "", false
	}
	return s.Value, true
}

var (
	typeNames    = enumNames(features.NumTypes, func(i int) string { return features.EventType(i).String() }, 1)
	classNames   = []string{"online", "offline", "any"}
	windowNames  = enumNames(features.NumWindows, func(i int) string { return features.Window(i).String() }, 0)
	purposeNames = enumNames(features.NumPurposes, func(i int) string { return features.Purpose(i).String() }, 0)
	channelNames = enumNames(features.NumChannels, func(i int) string { return features.Channel(i).String() }, 1)
)

func enumNames[N ~uint8](n N, name func(int) string, from int) []string {
	var out []string
	for i := from; i < int(n); i++ {
		out = append(out, name(i))
	}
	return out
}

func validType(s string) bool    { _, ok := features.ParseEventType(s); return ok }
func validClass(s string) bool   { _, ok := parseClass(s); return ok }
func validWindow(s string) bool  { _, ok := features.ParseWindow(s); return ok }
func validPurpose(s string) bool { _, ok := features.ParsePurpose(s); return ok }
func validChannel(s string) bool { _, ok := features.ParseChannel(s); return ok }

// fieldRef recognises a rewritten feature read _i(k), _b(k) or _s(k).
func fieldRef(n ast.Node) (fn string, field int, ok bool) {
	call, isCall := n.(*ast.CallNode)
	if !isCall || len(call.Arguments) != 1 {
		return "", 0, false
	}
	id, isID := call.Callee.(*ast.IdentifierNode)
	arg, isInt := call.Arguments[0].(*ast.IntegerNode)
	if !isID || !isInt {
		return "", 0, false
	}
	switch id.Value {
	case "_i", "_b", "_s", "_n", "_ni":
		return id.Value, arg.Value, true
	}
	return "", 0, false
}

// isItemCategory reports whether n reads the for_each item's category.
func isItemCategory(n ast.Node) bool {
	fn, f, ok := fieldRef(n)
	return ok && fn == "_s" && envFields[f].name == "category"
}

// constNumber returns the value of an integer or float literal, possibly
// negated.
func constNumber(n ast.Node) (i int64, f float64, isFloat, ok bool) {
	neg := false
	if u, isU := n.(*ast.UnaryNode); isU && u.Operator == "-" {
		neg, n = true, u.Node
	}
	switch c := n.(type) {
	case *ast.IntegerNode:
		i, f = int64(c.Value), float64(c.Value)
	case *ast.FloatNode:
		f, isFloat = c.Value, true
	default:
		return 0, 0, false, false
	}
	if neg {
		i, f = -i, -f
	}
	return i, f, isFloat, true
}

func (p *patcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		// A feature name becomes a typed read; function names and unknown
		// names are left to the checker.
		k, ok := envFieldByName[n.Value]
		if !ok || p.lets[n.Value] {
			return
		}
		if n.Value == "compared_skus" {
			p.c.needCompared = true
		}
		if p.forEach == NoForEach && isItemName(n.Value) {
			p.problem(n, "%s is a for_each item and the scenario has no for_each; add for_each: viewed_not_bought (or cart, visit_categories) or use a constant", n.Value)
		}
		fn := "_i"
		switch envFields[k].kind {
		case reflect.Bool:
			fn = "_b"
		case reflect.String:
			fn = "_s"
		}
		ast.Patch(node, slotCall(fn, k))
		return
	case *ast.BinaryNode:
		p.binary(node, n)
		return
	case *ast.CallNode:
		p.call(node, n)
	}
}

// binary rewrites `feature OP constant`, `count(...) OP constant` and
// `score("x") OP constant` into one typed comparison, and `s == ""` into
// an emptiness test: neither boxes a value.
func (p *patcher) binary(node *ast.Node, n *ast.BinaryNode) {
	switch n.Operator {
	case "==", "!=", "<", "<=", ">", ">=":
	default:
		return
	}
	if str, ok := n.Right.(*ast.StringNode); ok && str.Value == "" && (n.Operator == "==" || n.Operator == "!=") {
		if fn, f, ok := fieldRef(n.Left); ok && fn == "_s" {
			var repl ast.Node = slotCall("_e", f)
			if n.Operator == "!=" {
				repl = &ast.UnaryNode{Operator: "!", Node: repl}
			}
			ast.Patch(node, repl)
		}
		return
	}
	i, f, isFloat, ok := constNumber(n.Right)
	if !ok {
		return
	}
	c := cmpSlot{op: n.Operator, i: i, f: f, float: isFloat}
	if fn, idx, ok := fieldRef(n.Left); ok {
		switch fn {
		case "_i":
			c.src = cmpField
		case "_n":
			c.src = cmpSlotN
		case "_ni":
			c.src = cmpSlotNI
		default:
			return
		}
		c.idx = idx
	} else if call, ok := n.Left.(*ast.CallNode); ok {
		id, isID := call.Callee.(*ast.IdentifierNode)
		if !isID || id.Value != "score" || len(call.Arguments) != 1 {
			return
		}
		name, isStr := call.Arguments[0].(*ast.StringNode)
		if !isStr {
			return
		}
		c.src, c.name, c.float = cmpScore, name.Value, true
	} else {
		return
	}
	p.c.cmps = append(p.c.cmps, c)
	ast.Patch(node, slotCall("_c", len(p.c.cmps)-1))
}

func (p *patcher) call(node *ast.Node, call *ast.CallNode) {
	id, ok := call.Callee.(*ast.IdentifierNode)
	if !ok {
		return
	}
	args := call.Arguments
	if fnIdx, ok := strFnNames[id.Value]; ok && len(args) == 1 {
		if fn, f, ok := fieldRef(args[0]); ok && fn == "_s" {
			ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: "_x"}, Arguments: []ast.Node{&ast.IntegerNode{Value: fnIdx}, &ast.IntegerNode{Value: f}}})
		}
		return
	}
	switch id.Value {
	case "count", "sum":
		if len(args) != 3 && len(args) != 4 {
			p.problem(call, "%s takes 3 or 4 arguments: %s(type, class, window[, category]), e.g. %s(\"order\", \"online\", \"30d\")", id.Value, id.Value, id.Value)
			return
		}
		typ, ok1 := p.constString(args[0], "event type", id.Value, validType, typeNames)
		class, ok2 := p.constString(args[1], "class", id.Value, validClass, classNames)
		window, ok3 := p.constString(args[2], "window", id.Value, validWindow, windowNames)
		if !ok1 || !ok2 || !ok3 {
			return
		}
		s := slot{sum: id.Value == "sum"}
		s.typ, _ = features.ParseEventType(typ)
		s.class, _ = parseClass(class)
		s.window, _ = features.ParseWindow(window)
		if len(args) == 3 {
			ast.Patch(node, slotCall("_n", p.c.addSlot(s)))
			return
		}
		if cat, ok := args[3].(*ast.StringNode); ok {
			s.category = cat.Value
			ast.Patch(node, slotCall("_n", p.c.addSlot(s)))
			return
		}
		if isItemCategory(args[3]) {
			ast.Patch(node, slotCall("_ni", p.c.addSlot(s)))
			return
		}
		ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: "_nc"}, Arguments: []ast.Node{args[3], &ast.IntegerNode{Value: p.c.addSlot(s)}}})
	case "hours_since", "days_since":
		if len(args) == 1 {
			p.constString(args[0], "event type", id.Value, validType, typeNames)
		}
	case "evening_count":
		if len(args) != 2 {
			return // the checker reports the arity
		}
		typ, ok := p.constString(args[0], "event type", id.Value, validType, typeNames)
		if !ok {
			return
		}
		s := slot{window: features.NumWindows} // marks an evening slot
		s.typ, _ = features.ParseEventType(typ)
		if cat, ok := args[1].(*ast.StringNode); ok {
			s.category = cat.Value
			ast.Patch(node, slotCall("_ev", p.c.addSlot(s)))
		} else if isItemCategory(args[1]) {
			ast.Patch(node, slotCall("_evi", p.c.addSlot(s)))
		}
	case "has_consent":
		if len(args) != 2 {
			return
		}
		p.constString(args[0], "purpose", id.Value, validPurpose, purposeNames)
		if _, isStr := args[1].(*ast.StringNode); isStr {
			p.constString(args[1], "channel", id.Value, validChannel, channelNames)
		}
	}
}

func slotCall(fn string, i int) ast.Node {
	return &ast.CallNode{Callee: &ast.IdentifierNode{Value: fn}, Arguments: []ast.Node{&ast.IntegerNode{Value: i}}}
}

// costChecker bounds an expression's work before it is compiled: ranges
// must have constant bounds and at most maxRange elements, and the
// iterations of every predicate builtin (map, filter, all, …) multiplied
// together stay under maxIterations. An offending range is neutralised so
// the compiler's constant folding never materialises it.
type costChecker struct {
	p     *patcher
	steps int
}

func (c *costChecker) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.VariableDeclaratorNode:
		if _, isFeature := envFieldByName[n.Name]; isFeature {
			c.p.problem(n, "let %s hides the feature of the same name; rename the variable", n.Name)
		}
		if c.p.lets == nil {
			c.p.lets = map[string]bool{}
		}
		c.p.lets[n.Name] = true
	case *ast.BinaryNode:
		if n.Operator != ".." {
			return
		}
		l, lok := n.Left.(*ast.IntegerNode)
		r, rok := n.Right.(*ast.IntegerNode)
		switch {
		case !lok || !rok:
			c.p.problem(n, "a range needs constant integer bounds (e.g. 1..10) so its cost is known at load")
		case r.Value-l.Value+1 > maxRange:
			c.p.problem(n, "the range %d..%d has %d elements; the limit is %d so one rule cannot stall the service", l.Value, r.Value, r.Value-l.Value+1, maxRange)
		default:
			return
		}
		n.Left, n.Right = &ast.IntegerNode{Value: 0}, &ast.IntegerNode{Value: 0}
	case *ast.BuiltinNode:
		if len(n.Arguments) < 2 {
			return
		}
		if _, pred := n.Arguments[1].(*ast.PredicateNode); !pred {
			return
		}
		size := 0
		switch coll := n.Arguments[0].(type) {
		case *ast.ArrayNode:
			size = len(coll.Nodes)
		case *ast.BinaryNode:
			if coll.Operator == ".." {
				l, lok := coll.Left.(*ast.IntegerNode)
				r, rok := coll.Right.(*ast.IntegerNode)
				if lok && rok {
					size = max(r.Value-l.Value+1, 0)
				}
			}
		default:
			c.p.problem(n, "%s iterates over a collection whose size is not known at load; iterate over a constant range or list", n.Name)
			return
		}
		if c.steps == 0 {
			c.steps = 1
		}
		c.steps *= max(size, 1)
		if c.steps > maxIterations {
			c.p.problem(n, "the expression may take %d iteration steps; the limit is %d — iterate over fewer elements", c.steps, maxIterations)
			c.steps = 1
		}
	}
}
