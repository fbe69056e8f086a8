package main

import (
	"fmt"
	"os"
)

// cmdBench runs a benchmark or writes the report of one:
//
//	hedge bench mqtt [flags]    load-test a running hedge over MQTT
//	hedge bench tiers [flags]   start a hedge with every tier on and time each tier over the socket
//	hedge bench report [flags]  write BENCHMARKS.md from the JSON results in bin/bench
func cmdBench(args []string) int {
	sub := ""
	if len(args) > 0 {
		sub = args[0]
	}
	switch sub {
	case "mqtt":
		return interruptible(benchMQTT)(args[1:])
	case "tiers":
		return interruptible(benchTiers)(args[1:])
	case "report":
		return interruptible(benchReport)(args[1:])
	}
	fmt.Fprintln(os.Stderr, "usage: hedge bench mqtt|tiers|report [flags]   (hedge bench SUBCOMMAND -h lists them)")
	return 2
}
