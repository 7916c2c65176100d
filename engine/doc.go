// Package engine decides: for a customer, a channel and a moment it chooses
// the next best offers, applies contact policy and budgets, publishes push
// triggers and logs decisions. Its subpackages hold the HTTP layer (the only
// hertz importer) and the decision cache (the only ristretto importer).
package engine
