// Package models trains propensity models with golearn (trees, random
// forests, naive Bayes), exports them as versioned artifacts, compiles them
// into pure-Go scorers for the request path, and keeps the Thompson-sampling
// posteriors that learn from outcomes online. It never imports scenarios.
package models
