package proxy

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/origin/hostile"
)

var edgeTagSeq atomic.Int64

// TestHostileOriginsThroughEdge runs behaviours of the hostile-origin
// corpus through the whole edge, with origins.client edgeblock and
// stdlib: two sites (routes) on one origin address, visitors one after
// another and concurrently. Through edgeblock's client no visitor gets an
// answer tagged for another request, gets anything but the proper answer
// where the origin gives every request one, or has a POST received twice;
// unsolicited bytes count in edgeblock_upstream_errors_total and are
// logged. One after another, each visitor gets from edgeblock's client
// what it gets from stdlib's, or a stricter result.
func TestHostileOriginsThroughEdge(t *testing.T) {
	if testing.Short() {
		t.Skip("real loopback origins and edges")
	}
	subset := map[string]bool{
		"well-behaved": true, "extra response in the same write": true, "extra response while idle": true,
		"bytes past Content-Length while idle": true, "body after HEAD while idle": true, "body after 204": true,
		"interim 408 while idle, kept open": true, "1xx flood": true, "POST closed on reuse before any answer": true,
		"chunked and Content-Length": true, "reset in the body": true,
	}
	const seqVisitors, conGoers, conVisits = 6, 3, 4
	n := 0
	for _, b := range hostile.Corpus() {
		if !subset[b.Name] {
			continue
		}
		n++
		t.Run(b.Name, func(t *testing.T) {
			seq := map[string][]string{}
			seqWrong := map[string][]bool{}
			for _, client := range []string{"edgeblock", "stdlib"} {
				o := hostile.Start(t, b)
				u := `"http://` + o.Addr() + `"`
				e := startEnv(t, "origins:\n  client: "+client+"\n  passive: {max_fails: -1}\n"+routeConfig("a.example", u, "b.example", u), "")
				visitor := &http.Transport{}
				t.Cleanup(visitor.CloseIdleConnections)
				visit := func(i int) (string, bool) {
					tag := hostile.Tag(int(edgeTagSeq.Add(1)))
					r := hostile.Visit(visitor, e.url("http")+"/p", []string{"a.example", "b.example"}[i%2], b, tag)
					wrong := ""
					if f := o.Foreign(tag, r.Got); len(f) > 0 {
						wrong = fmt.Sprintf("visitor %s received %s's answer: %.300q", tag, f[0], r.Got)
					} else if b.Want != 0 && r.Outcome != fmt.Sprint(b.Want) && !o.Ambiguous(tag) {
						wrong = fmt.Sprintf("visitor %s got %s, want %d: %.300q", tag, r.Outcome, b.Want, r.Got)
					}
					if b.Method == "POST" && o.Received(tag) > 1 {
						t.Errorf("%s: the origin got POST %s %d times", client, tag, o.Received(tag))
					}
					switch {
					case wrong == "":
					case client == "edgeblock":
						t.Errorf("%s: %s", client, wrong)
					default:
						t.Logf("%s (net/http's Transport, not failing the test): %s", client, wrong)
					}
					return r.Outcome, wrong != ""
				}
				for i := range seqVisitors {
					o.Settle(t)
					out, wrong := visit(i)
					seq[client] = append(seq[client], out)
					seqWrong[client] = append(seqWrong[client], wrong)
				}
				var wg sync.WaitGroup
				for g := range conGoers {
					wg.Go(func() {
						for i := range conVisits {
							time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
							visit(g + i)
						}
					})
				}
				wg.Wait()
				if client == "edgeblock" && strings.Contains(b.Name, "extra response") {
					series := `edgeblock_upstream_errors_total{kind="unsolicited",origin="http://` + o.Addr() + `",route="a.example"}`
					series2 := strings.Replace(series, "a.example", "b.example", 1)
					m := e.scrape()
					if edgetest.MetricValue(m, series) == "" && edgetest.MetricValue(m, series2) == "" {
						t.Errorf("no %s in the metrics", series)
					}
					if len(e.logs.Lines(t, "origin sent bytes no request asked for; connection closed")) == 0 {
						t.Error("no origin_unsolicited log line")
					}
				}
			}
			ours, std := seq["edgeblock"], seq["stdlib"]
			for i := range ours {
				switch {
				case b.Racy || seqWrong["stdlib"][i] || ours[i] == std[i]:
				case ours[i] != "200" && std[i] == "200":
					t.Logf("visitor %d: edgeblock %s, stdlib %s (stricter)", i, ours[i], std[i])
				default:
					t.Errorf("visitor %d: edgeblock %s, stdlib %s", i, ours[i], std[i])
				}
			}
		})
	}
	t.Logf("%d behaviours × %d visitors per client (%d one by one, %d concurrent)", n, seqVisitors+conGoers*conVisits, seqVisitors, conGoers*conVisits)
}
