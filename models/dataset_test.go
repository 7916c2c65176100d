package models

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadCSV(t *testing.T) {
	tests := []struct {
		name    string
		csv     string
		opts    CSVOptions
		wantErr string
		check   func(t *testing.T, ds *Dataset)
	}{
		{
			name: "string columns become categorical with a sorted vocabulary and numbers numeric",
			csv:  "age,city,y\n30,paris,1\n41.5,berlin,0\n,paris,1\n",
			opts: CSVOptions{Label: "y"},
			check: func(t *testing.T, ds *Dataset) {
				require.Equal(t, []Feature{{Name: "age", Kind: Numeric}, {Name: "city", Kind: Categorical, Vocabulary: []string{"berlin", "paris"}}}, ds.Schema.Features)
				require.Equal(t, 30.0, ds.X[0][0])
				require.Equal(t, 1.0, ds.X[0][1])
				require.True(t, math.IsNaN(ds.X[2][0]), "an empty cell is missing")
				require.Equal(t, []bool{true, false, true}, ds.Y)
				require.Equal(t, "1", ds.Positive)
			},
		},
		{
			name: "yes is the positive label by default",
			csv:  "a,label\nx,no\ny,yes\n",
			opts: CSVOptions{Label: "label"},
			check: func(t *testing.T, ds *Dataset) {
				require.Equal(t, "yes", ds.Positive)
				require.Equal(t, []bool{false, true}, ds.Y)
			},
		},
		{
			name:  "without a conventional label the larger one is positive",
			csv:   "a,label\nx,bought\ny,abandoned\n",
			opts:  CSVOptions{Label: "label"},
			check: func(t *testing.T, ds *Dataset) { require.Equal(t, "bought", ds.Positive) },
		},
		{
			name: "a positive class taken alphabetically is warned about, saying how to choose the other",
			csv:  "a,label\nx,bought\ny,no\n",
			opts: CSVOptions{Label: "label"},
			check: func(t *testing.T, ds *Dataset) {
				require.Equal(t, "no", ds.Positive)
				require.Len(t, ds.Warnings, 1)
				require.Contains(t, ds.Warnings[0], `the positive class is "no", the later of the labels "bought" and "no" alphabetically`)
				require.Contains(t, ds.Warnings[0], `give --positive "bought" to predict the other`)
			},
		},
		{
			name: "y is a conventional positive label and 1, yes, true and y raise no warning",
			csv:  "a,label\nx,n\ny,Y\n",
			opts: CSVOptions{Label: "label"},
			check: func(t *testing.T, ds *Dataset) {
				require.Equal(t, "Y", ds.Positive)
				require.Empty(t, ds.Warnings)
			},
		},
		{
			name:  "a positive label given explicitly raises no warning",
			csv:   "a,label\nx,bought\ny,no\n",
			opts:  CSVOptions{Label: "label", Positive: "bought"},
			check: func(t *testing.T, ds *Dataset) { require.Empty(t, ds.Warnings) },
		},
		{
			name:  "an explicit positive label wins",
			csv:   "a,label\nx,1\ny,0\n",
			opts:  CSVOptions{Label: "label", Positive: "0"},
			check: func(t *testing.T, ds *Dataset) { require.Equal(t, []bool{false, true}, ds.Y) },
		},
		{
			name: "NA, NaN, null and N/A in any case are missing like an empty cell and keep a column numeric",
			csv:  "age,city,y\n30,NA,1\nNA,paris,0\nnan,na,1\nNULL,N/A,0\n n/a ,paris,1\n7,Null,0\n",
			opts: CSVOptions{Label: "y"},
			check: func(t *testing.T, ds *Dataset) {
				require.Equal(t, []Feature{{Name: "age", Kind: Numeric}, {Name: "city", Kind: Categorical, Vocabulary: []string{"paris"}}}, ds.Schema.Features)
				for r := 1; r < 5; r++ {
					require.True(t, math.IsNaN(ds.X[r][0]), "row %d", r)
				}
				require.True(t, math.IsNaN(ds.X[0][1]), "NA is not a category")
				require.Equal(t, 7.0, ds.X[5][0])
				require.Empty(t, ds.Warnings)
			},
		},
		{
			name: "a categorical column whose values are mostly numbers is warned about, naming the first other value",
			csv:  "x,y\n" + numericLookingRows(30, 4, "?"),
			opts: CSVOptions{Label: "y"},
			check: func(t *testing.T, ds *Dataset) {
				require.Equal(t, Categorical, ds.Schema.Features[0].Kind)
				require.Len(t, ds.Warnings, 1)
				require.Contains(t, ds.Warnings[0], `column "x" is categorical with 31 distinct values, 30 of them numbers: line 6 holds "?"`)
				require.Contains(t, ds.Warnings[0], "leave the cell empty or write NA")
			},
		},
		{
			name:  "a categorical column of few values is not warned about",
			csv:   "x,y\n1,0\n2,1\nthree,0\n",
			opts:  CSVOptions{Label: "y"},
			check: func(t *testing.T, ds *Dataset) { require.Empty(t, ds.Warnings) },
		},
		{name: "a ragged row names its line", csv: "a,y\n1,0\n2\n", opts: CSVOptions{Label: "y"}, wantErr: "line 3: 1 fields, the header has 2"},
		{name: "a missing label column is refused", csv: "a,b\n1,0\n", opts: CSVOptions{Label: "y"}, wantErr: `label column "y" is not in the header`},
		{name: "three label values are refused", csv: "a,y\n1,0\n2,1\n3,2\n", opts: CSVOptions{Label: "y"}, wantErr: "exactly two values, found 3"},
		{name: "an empty label cell names its line", csv: "a,y\n1,0\n2,\n3,1\n", opts: CSVOptions{Label: "y"}, wantErr: "line 3: label column"},
		{name: "a positive label that does not occur is refused", csv: "a,y\n1,0\n2,1\n", opts: CSVOptions{Label: "y", Positive: "yes"}, wantErr: `positive label "yes" does not occur`},
		{name: "a duplicate column name is refused", csv: "a,a,y\n1,2,0\n", opts: CSVOptions{Label: "y"}, wantErr: `column name "a" appears twice`},
		{name: "an empty file is refused", csv: "", opts: CSVOptions{Label: "y"}, wantErr: "the file is empty"},
		{name: "a header without rows is refused", csv: "a,y\n", opts: CSVOptions{Label: "y"}, wantErr: "no data rows"},
		{name: "a Latin-1 cell names its line and column and says to convert", csv: "a,city,y\n1,paris,0\n2,caf\xe9,1\n", opts: CSVOptions{Label: "y"},
			wantErr: `line 3, column 2 ("city"): "caf\xe9" is not UTF-8 text; convert the file to UTF-8`},
		{name: "a Latin-1 header names line 1", csv: "a,caf\xe9,y\n1,2,0\n", opts: CSVOptions{Label: "y"}, wantErr: `line 1, column 2: "caf\xe9" is not UTF-8`},
		{name: "the label option is required", csv: "a,y\n1,0\n", wantErr: "label column is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := ReadCSV(strings.NewReader(tt.csv), tt.opts)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, ds)
		})
	}
}

// numericLookingRows returns n rows of distinct numbers in column x, with
// other at row index at (0-based), each labelled 0 or 1 in column y.
func numericLookingRows(n, at int, other string) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i == at {
			fmt.Fprintf(&b, "%s,%d\n", other, i%2)
		}
		fmt.Fprintf(&b, "%d.5,%d\n", i, i%2)
	}
	return b.String()
}

func TestScoreRowsMatchesByNameAndTreatsUnknownCategoriesAsMissing(t *testing.T) {
	s := Schema{Features: []Feature{{Name: "age", Kind: Numeric}, {Name: "city", Kind: Categorical, Vocabulary: []string{"berlin", "paris"}}}}
	rows, err := ScoreRows(strings.NewReader("city,y,age\nparis,1,30\nrome,0,\n"), s, "y")
	require.NoError(t, err)
	require.Equal(t, []float64{30, 1}, rows[0])
	require.True(t, math.IsNaN(rows[1][0]))
	require.True(t, math.IsNaN(rows[1][1]), "an unknown category is missing")

	_, err = ScoreRows(strings.NewReader("age,city\n3,caf\xe9\n"), s, "y")
	require.ErrorContains(t, err, `line 2, column 2 ("city"): "caf\xe9" is not UTF-8 text; convert the file to UTF-8`)

	_, err = ScoreRows(strings.NewReader("age\n3\n"), s, "y")
	require.ErrorContains(t, err, `feature column "city" of the model is not in the header`)
}

func TestSplitIsStratifiedAndSeeded(t *testing.T) {
	st := synthData(2000, 5)
	train, test := st.ds.Split(0.25, 9)
	require.Equal(t, 2000, len(train.Y)+len(test.Y))
	rate := func(y []bool) float64 {
		n := 0
		for _, v := range y {
			if v {
				n++
			}
		}
		return float64(n) / float64(len(y))
	}
	require.InDelta(t, rate(st.ds.Y), rate(test.Y), 0.001, "the holdout keeps the positive rate")
	require.InDelta(t, 500, len(test.Y), 1)
	_, again := st.ds.Split(0.25, 9)
	require.Equal(t, test.X, again.X)
	_, other := st.ds.Split(0.25, 10)
	require.NotEqual(t, test.X, other.X)
}

func TestSchemaHashChangesWithLayout(t *testing.T) {
	a := Schema{Features: []Feature{{Name: "a", Kind: Numeric}, {Name: "c", Kind: Categorical, Vocabulary: []string{"x", "y"}}}}
	b := Schema{Features: []Feature{{Name: "a", Kind: Numeric}, {Name: "c", Kind: Categorical, Vocabulary: []string{"x", "z"}}}}
	c := Schema{Features: []Feature{{Name: "c", Kind: Categorical, Vocabulary: []string{"x", "y"}}, {Name: "a", Kind: Numeric}}}
	require.Len(t, a.Hash(), 64)
	require.Equal(t, a.Hash(), Schema{Features: append([]Feature(nil), a.Features...)}.Hash())
	require.NotEqual(t, a.Hash(), b.Hash())
	require.NotEqual(t, a.Hash(), c.Hash())
}

func FuzzReadCSV(f *testing.F) {
	f.Add("age,city,y\n30,paris,1\n41.5,berlin,0\n,paris,1\n", "y")
	f.Add("a,y\n1,0\n2\n", "y")
	f.Add("\"a\nb\",y\n\"x,\"\"\",0\n1,1\n", "y")
	f.Fuzz(func(t *testing.T, body, label string) {
		ds, err := ReadCSV(strings.NewReader(body), CSVOptions{Label: label})
		if err != nil {
			return
		}
		require.Equal(t, len(ds.X), len(ds.Y))
		for _, x := range ds.X {
			require.Len(t, x, len(ds.Schema.Features))
			for i, v := range x {
				if ds.Schema.Features[i].Kind == Categorical && !math.IsNaN(v) {
					require.Less(t, int(v), len(ds.Schema.Features[i].Vocabulary))
				}
			}
		}
	})
}
