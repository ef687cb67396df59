package cli

import "github.com/spf13/cobra"

// verbs returns the command's verbs, in the order help lists them.
func (c *cli) verbs() []*cobra.Command {
	return []*cobra.Command{
		c.convertCommand(),
		c.optimizeCommand(),
		c.inspectCommand(),
		c.lsCommand(),
		c.catCommand(),
		c.cpCommand(),
		c.planCommand(),
		c.verifyCommand(),
	}
}
