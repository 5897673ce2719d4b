package main

import (
	"io"
	"os"
	"runtime/pprof"
	"testing"
	"time"
)

func TestZZProf(t *testing.T) {
	f, _ := os.Create("/tmp/sl/cpu.prof")
	pprof.StartCPUProfile(f)
	t0 := time.Now()
	rc := runBlock([]string{"-config", "/tmp/sl/edgeblock.yaml", "prof1.example"}, io.Discard, os.Stderr)
	pprof.StopCPUProfile()
	t.Log(rc, time.Since(t0))
}
