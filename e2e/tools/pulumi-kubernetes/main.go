// Command pulumi-resource-kubernetes serves pulumi-kubernetes' provider from its Go module.
//
// Upstream's main embeds schema files that `go generate` writes and git ignores, so the module
// zip lacks them; e2e/tools/build copies the committed schema.json and terraform-mapping.json out
// of the module into this directory before building.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema.json
var schema []byte

//go:embed terraform-mapping.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, schema, terraformMapping)
}
