// Command kubectl-locus is a kubectl plugin: put it on the PATH and run
// `kubectl locus explain POD`, `kubectl locus quota`, `kubectl locus
// datasets` or `kubectl locus simulate -f pods.yaml`.
package main

import "locus.dev/locus/cmd/kubectl-locus/app"

func main() { app.Main() }
