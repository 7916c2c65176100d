package api

import _ "embed"

// openapiDoc is the OpenAPI 3 document served at /openapi.json. A test
// checks that it lists exactly the registered routes.
//
//go:embed openapi.json
var openapiDoc []byte
