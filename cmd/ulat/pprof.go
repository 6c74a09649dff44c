package main

import (
	"fmt"
	"net/http"
	_ "net/http/pprof" // on http.DefaultServeMux, which only servePprof serves
	"os"
)

// servePprof serves Go's profiles of ulat itself on the address
// ULAT_PPROF names (e.g. 127.0.0.1:6061), to find what an agent's CPU
// time or a scrape goes to: the agent's own listener never serves them.
func servePprof() {
	addr := os.Getenv("ULAT_PPROF")
	if addr == "" {
		return
	}
	go func() {
		if err := http.ListenAndServe(addr, nil); err != nil {
			fmt.Fprintf(os.Stderr, "ulat: ULAT_PPROF=%s: %v\n", addr, err)
		}
	}()
}
