// Command origin is the benchmark rig's origin server: it answers every
// request with a small fixed body, on the loopback address given.
package main

import (
	"flag"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18081", "listen `address` (loopback)")
	flag.Parse()
	body := []byte("<!DOCTYPE html><title>origin</title><p>Hello from the benchmark origin.</p>\n")
	log.Fatal(http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(body)
	})))
}
