// Package models trains propensity models with golearn (trees, random
// forests, naive Bayes), exports them as versioned artifacts, compiles them
// into pure-Go scorers for the request path, and keeps the Thompson-sampling
// posteriors that learn from outcomes online. It never imports scenarios.
//
// The pieces, in the order data flows through them:
//
//   - ReadCSV turns a labelled CSV into a Dataset in our own encoding: a
//     Schema (feature names, kinds, sorted categorical vocabularies) and
//     []float64 feature vectors where a categorical value is its
//     vocabulary index and NaN is missing.
//   - Train fits a forest, a single tree or naive Bayes on a stratified
//     share of the rows (golearn's ID3 node type, split search and
//     Bernoulli naive Bayes; our own seeded bootstrap, random attributes
//     per split and sorted recursion, so a seed reproduces a model
//     exactly), evaluates the compiled scorer on the holdout (AUC,
//     accuracy, logloss, calibration deciles) and returns an Artifact.
//   - An Artifact is plain JSON (format_version 1): algorithm, schema and
//     its sha256 hash, metrics, creation time, and the trees as flat node
//     arrays with leaf class frequencies (or naive Bayes log-odds tables).
//   - Compile turns an artifact into a Scorer: immutable, zero allocations
//     per row, P(positive) = leaf class frequency averaged over the trees.
//     golearn never runs on the request path.
//   - Registry serves the active Model behind an atomic pointer and
//     refuses an artifact whose schema hash differs from the live one.
//   - Bandit keeps Beta-Bernoulli posteriors per (offer, segment) for
//     Thompson sampling; it marshals into the engine's snapshot.
//   - IPS and DoublyRobust estimate a candidate policy's value from logged
//     decisions with their logged propensities.
//
// Missing values: a missing numeric value takes the training median
// (stored in the artifact as Impute) both in training and in scoring; a
// missing or unknown categorical value takes its own "missing" slot, and
// where training saw no row with that slot at a split, the walk stops and
// the split node's own class frequencies answer.
//
// Not for: building feature vectors from customer state (the engine and
// features packages do that and compute the live schema hash), choosing
// offers (scenarios and engine), or serving HTTP.
package models
