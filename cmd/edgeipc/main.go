// Command edgeipc is the edgeipc runtime, control client and toolbox.
// Run `edgeipc help` for the list of commands; exit codes are documented
// in internal/cli.
package main

import (
	"os"

	"github.com/edgeipc/edgeipc/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
