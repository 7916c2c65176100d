// Package bench simulates an OMO retailer (stores, catalog, customers with
// hidden response probabilities), generates open-loop load, and writes the
// side-by-side benchmark reports. Only cmd/nbo imports it.
package bench
