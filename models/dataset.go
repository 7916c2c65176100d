package models

import (
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind says how a feature is encoded in a feature vector.
type Kind string

const (
	// Numeric features carry their value; NaN means missing.
	Numeric Kind = "numeric"
	// Categorical features carry the index of their value in the feature's
	// Vocabulary; NaN (or any index outside the vocabulary) means missing
	// or unknown.
	Categorical Kind = "categorical"
)

// Feature describes one position of a feature vector.
type Feature struct {
	Name string `json:"name"`
	Kind Kind   `json:"kind"`
	// Vocabulary lists the categorical values seen in training, sorted, so
	// the same data always yields the same encoding. Empty for numeric
	// features.
	Vocabulary []string `json:"vocabulary,omitempty"`
}

// Schema is the layout of the feature vectors a model scores: feature i of
// the vector is Features[i].
type Schema struct {
	Features []Feature `json:"features"`
}

// Hash returns the hex sha256 of the schema's canonical encoding: one line
// per feature, "name\tkind\tvalue1\x1fvalue2…". Two schemas hash equal
// exactly when they encode vectors the same way, so the engine compares its
// live feature layout with a model's before serving it.
func (s Schema) Hash() string {
	h := sha256.New()
	for _, f := range s.Features {
		fmt.Fprintf(h, "%s\t%s\t%s\n", f.Name, f.Kind, strings.Join(f.Vocabulary, "\x1f"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Index returns the position of the named feature, or -1.
func (s Schema) Index(name string) int {
	for i, f := range s.Features {
		if f.Name == name {
			return i
		}
	}
	return -1
}

// Encode returns the vector value of a raw string cell for feature i:
// the parsed number for numeric features, the vocabulary index for
// categorical ones, NaN for an empty cell, an unparsable number or an
// unknown category. A missing-value token (NA, NaN, null, N/A) is never
// a number and, since ReadCSV keeps it out of vocabularies, an unknown
// category — it is not tested for here, so an artifact trained before
// such tokens meant missing (with "NA" in a vocabulary) scores as before.
func (s Schema) Encode(i int, cell string) float64 {
	f := &s.Features[i]
	cell = strings.TrimSpace(cell)
	if cell == "" {
		return math.NaN()
	}
	if f.Kind == Numeric {
		v, err := strconv.ParseFloat(cell, 64)
		if err != nil {
			return math.NaN()
		}
		return v
	}
	j := sort.SearchStrings(f.Vocabulary, cell)
	if j < len(f.Vocabulary) && f.Vocabulary[j] == cell {
		return float64(j)
	}
	return math.NaN()
}

// Dataset is a labelled table in our own typed encoding: X[r] is row r's
// feature vector under Schema, Y[r] is true for the positive class.
type Dataset struct {
	Schema Schema
	X      [][]float64
	Y      []bool
	// Positive is the label value counted as the positive class.
	Positive string
	// Warnings are things about the input a person should look at (a
	// column that looks numeric but was read as categorical), one
	// sentence each; ReadCSV fills them, the caller shows them.
	Warnings []string
}

// CSVOptions says how to read a labelled CSV file.
type CSVOptions struct {
	// Label names the label column. Required.
	Label string
	// Positive is the label value of the positive class. Default: "1",
	// "yes", "true" or "y" (case-insensitive) if one of the two labels is
	// one of those, else the lexicographically larger of the two labels,
	// with a warning in Dataset.Warnings.
	Positive string
}

// Validate reports every problem with the options at once.
func (o CSVOptions) Validate() error {
	var errs []error
	if strings.TrimSpace(o.Label) == "" {
		errs = append(errs, errors.New("models: csv: label column is required (--label)"))
	}
	return errors.Join(errs...)
}

// ErrBadCSV marks every error about the content of a CSV file.
var ErrBadCSV = errors.New("models: bad csv")

// ReadCSV reads a labelled CSV with a header row. A column is numeric when
// every non-missing cell parses as a float, else categorical; empty cells
// and NA, NaN, null and N/A (any case) are missing values (IsMissing). The label column must hold exactly two distinct values.
// Errors name the line and column.
func ReadCSV(r io.Reader, opts CSVOptions) (*Dataset, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	header, rows, lines, err := readRecords(r)
	if err != nil {
		return nil, err
	}
	labelCol := -1
	for i, h := range header {
		if h == opts.Label {
			labelCol = i
		}
	}
	if labelCol < 0 {
		return nil, fmt.Errorf("%w: label column %q is not in the header (columns: %s)", ErrBadCSV, opts.Label, excerpt(strings.Join(header, ",")))
	}
	labels := map[string]int{}
	for k, row := range rows {
		v := strings.TrimSpace(row[labelCol])
		if v == "" {
			return nil, fmt.Errorf("%w: line %d: label column %q is empty", ErrBadCSV, lines[k], opts.Label)
		}
		labels[v]++
	}
	pos, err := choosePositive(labels, opts.Positive)
	if err != nil {
		return nil, err
	}
	schema, warnings, err := inferSchema(header, rows, lines, labelCol)
	if err != nil {
		return nil, err
	}
	if w := positiveWarning(labels, opts.Positive, pos); w != "" {
		warnings = append([]string{w}, warnings...)
	}
	ds := &Dataset{Schema: schema, Positive: pos, X: make([][]float64, len(rows)), Y: make([]bool, len(rows)), Warnings: warnings}
	cols := featureColumns(len(header), labelCol)
	flat := make([]float64, len(rows)*len(cols))
	for k, row := range rows {
		x := flat[k*len(cols) : (k+1)*len(cols) : (k+1)*len(cols)]
		for i, c := range cols {
			x[i] = schema.Encode(i, row[c])
		}
		ds.X[k] = x
		ds.Y[k] = strings.TrimSpace(row[labelCol]) == pos
	}
	return ds, nil
}

// ScoreRows encodes an unlabelled (or labelled: the label column is
// ignored) CSV under an existing schema. Columns are matched by name;
// a schema feature missing from the file is an error, unknown categories
// become missing values.
func ScoreRows(r io.Reader, schema Schema, label string) ([][]float64, error) {
	header, rows, _, err := readRecords(r)
	if err != nil {
		return nil, err
	}
	pos := make([]int, len(schema.Features))
	for i, f := range schema.Features {
		pos[i] = -1
		for c, h := range header {
			if h == f.Name && h != label {
				pos[i] = c
			}
		}
		if pos[i] < 0 {
			return nil, fmt.Errorf("%w: feature column %q of the model is not in the header", ErrBadCSV, f.Name)
		}
	}
	out := make([][]float64, len(rows))
	for k, row := range rows {
		x := make([]float64, len(pos))
		for i, c := range pos {
			x[i] = schema.Encode(i, row[c])
		}
		out[k] = x
	}
	return out, nil
}

func readRecords(r io.Reader) (header []string, rows [][]string, lines []int, err error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // we check widths ourselves to name the line
	cr.ReuseRecord = false
	header, err = cr.Read()
	if err == io.EOF {
		return nil, nil, nil, fmt.Errorf("%w: the file is empty (a header row is required)", ErrBadCSV)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: reading header: %v", ErrBadCSV, err)
	}
	if err := checkUTF8(cr, header, nil); err != nil {
		return nil, nil, nil, err
	}
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		header[i] = h
		if h == "" {
			return nil, nil, nil, fmt.Errorf("%w: line 1: column %d has an empty name", ErrBadCSV, i+1)
		}
		if seen[h] {
			return nil, nil, nil, fmt.Errorf("%w: line 1: column name %q appears twice", ErrBadCSV, h)
		}
		seen[h] = true
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			// csv.ParseError names the line; FieldPos would panic here.
			return nil, nil, nil, fmt.Errorf("%w: %v", ErrBadCSV, err)
		}
		line, _ := cr.FieldPos(0)
		if err := checkUTF8(cr, rec, header); err != nil {
			return nil, nil, nil, err
		}
		if len(rec) != len(header) {
			return nil, nil, nil, fmt.Errorf("%w: line %d: %d fields, the header has %d", ErrBadCSV, line, len(rec), len(header))
		}
		rows = append(rows, rec)
		lines = append(lines, line)
	}
	if len(rows) == 0 {
		return nil, nil, nil, fmt.Errorf("%w: no data rows after the header", ErrBadCSV)
	}
	return header, rows, lines, nil
}

// checkUTF8 refuses a record with a cell that is not valid UTF-8. Such a
// cell (a Latin-1 "café") would be stored in the artifact's JSON with the
// bad bytes replaced by U+FFFD, so the artifact would no longer match its
// own schema hash nor the file it was trained on. header names the
// columns; nil for the header row itself.
func checkUTF8(cr *csv.Reader, rec, header []string) error {
	for i, cell := range rec {
		if utf8.ValidString(cell) {
			continue
		}
		line, _ := cr.FieldPos(i)
		col := fmt.Sprintf("column %d", i+1)
		if i < len(header) {
			col = fmt.Sprintf("column %d (%q)", i+1, header[i])
		}
		return fmt.Errorf("%w: line %d, %s: %+q is not UTF-8 text; convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8 in.csv > out.csv)",
			ErrBadCSV, line, col, excerpt(cell))
	}
	return nil
}

func choosePositive(labels map[string]int, want string) (string, error) {
	if len(labels) != 2 {
		vals := make([]string, 0, len(labels))
		for v := range labels {
			vals = append(vals, v)
		}
		sort.Strings(vals)
		if len(vals) > 5 {
			vals = append(vals[:5], "…")
		}
		return "", fmt.Errorf("%w: the label column must hold exactly two values, found %d (%s)", ErrBadCSV, len(labels), strings.Join(vals, ", "))
	}
	vals := make([]string, 0, 2)
	for v := range labels {
		vals = append(vals, v)
	}
	sort.Strings(vals)
	if want != "" {
		if labels[want] == 0 {
			return "", fmt.Errorf("%w: positive label %q does not occur (labels: %s, %s)", ErrBadCSV, want, vals[0], vals[1])
		}
		return want, nil
	}
	for _, v := range vals {
		switch strings.ToLower(v) {
		case "1", "yes", "true", "y":
			return v, nil
		}
	}
	return vals[1], nil
}

// positiveWarning says which label was taken as positive when neither
// label is a conventional positive one and none was given: with labels
// bought/no the positive class is "no", which is rarely what was meant.
func positiveWarning(labels map[string]int, want, pos string) string {
	if want != "" {
		return ""
	}
	switch strings.ToLower(pos) {
	case "1", "yes", "true", "y":
		return ""
	}
	other := ""
	for v := range labels {
		if v != pos {
			other = v
		}
	}
	return fmt.Sprintf("the positive class is %q, the later of the labels %q and %q alphabetically, as neither is 1, yes, true or y; "+
		"the model predicts P(label = %q); give --positive %q to predict the other", excerpt(pos), excerpt(other), excerpt(pos), excerpt(pos), excerpt(other))
}

// IsMissing reports whether a CSV cell stands for a missing value: an
// empty cell, or NA, NaN, null or N/A in any case. Without this one "NA"
// in a numeric column made the whole column categorical, with every
// distinct number a category of its own.
func IsMissing(cell string) bool {
	cell = strings.TrimSpace(cell)
	switch strings.ToLower(cell) {
	case "", "na", "nan", "null", "n/a":
		return true
	}
	return false
}

// Thresholds of the warning about a categorical column that looks numeric.
const (
	numericLookingMinValues = 20  // distinct values
	numericLookingShare     = 0.9 // of the distinct values that parse as numbers
)

func inferSchema(header []string, rows [][]string, lines []int, labelCol int) (Schema, []string, error) {
	var (
		s        Schema
		warnings []string
	)
	for _, c := range featureColumns(len(header), labelCol) {
		numeric := true
		vocab := map[string]bool{}
		numbers := 0     // distinct values that parse as numbers
		firstOther := -1 // row of the first value that does not
		for k, row := range rows {
			if IsMissing(row[c]) {
				continue
			}
			v := strings.TrimSpace(row[c])
			if vocab[v] {
				continue
			}
			vocab[v] = true
			if f, err := strconv.ParseFloat(v, 64); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				numeric = false
				if firstOther < 0 {
					firstOther = k
				}
			} else {
				numbers++
			}
		}
		f := Feature{Name: header[c], Kind: Numeric}
		if !numeric {
			f.Kind = Categorical
			for v := range vocab {
				f.Vocabulary = append(f.Vocabulary, v)
			}
			sort.Strings(f.Vocabulary)
			if len(vocab) >= numericLookingMinValues && float64(numbers) >= numericLookingShare*float64(len(vocab)) {
				warnings = append(warnings, fmt.Sprintf(
					"column %q is categorical with %d distinct values, %d of them numbers: line %d holds %q, which is not a number; "+
						"if it means missing, leave the cell empty or write NA, else the column cannot be used as a number",
					header[c], len(vocab), numbers, lines[firstOther], excerpt(strings.TrimSpace(rows[firstOther][c]))))
			}
		}
		s.Features = append(s.Features, f)
	}
	if len(s.Features) == 0 {
		return s, nil, fmt.Errorf("%w: no feature columns besides the label", ErrBadCSV)
	}
	return s, warnings, nil
}

func featureColumns(n, labelCol int) []int {
	cols := make([]int, 0, n-1)
	for c := 0; c < n; c++ {
		if c != labelCol {
			cols = append(cols, c)
		}
	}
	return cols
}

func excerpt(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// Split returns a stratified holdout: a fraction frac of the positive rows
// and the same fraction of the negative rows go to test, chosen by a
// generator seeded with seed. Rows keep their original order within each
// part, so the split depends only on (data, frac, seed).
func (d *Dataset) Split(frac float64, seed uint64) (train, test *Dataset) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	isTest := make([]bool, len(d.Y))
	for _, cls := range []bool{false, true} {
		var idx []int
		for i, y := range d.Y {
			if y == cls {
				idx = append(idx, i)
			}
		}
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		nTest := int(math.Round(frac * float64(len(idx))))
		for _, i := range idx[:nTest] {
			isTest[i] = true
		}
	}
	train = &Dataset{Schema: d.Schema, Positive: d.Positive}
	test = &Dataset{Schema: d.Schema, Positive: d.Positive}
	for i := range d.Y {
		dst := train
		if isTest[i] {
			dst = test
		}
		dst.X = append(dst.X, d.X[i])
		dst.Y = append(dst.Y, d.Y[i])
	}
	return train, test
}
