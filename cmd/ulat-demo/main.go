// Command ulat-demo is a small HTTP service to practise ulat on, with a load
// generator built in. Its handlers take known, different amounts of time:
//
//	/fast    ~50µs of CPU work
//	/lookup  a simulated cache (90% hits of ~200µs, 10% misses of ~5ms)
//	/report  ~20ms, spread between 10 and 30ms
//
// Usage:
//
//	ulat-demo serve [-addr 127.0.0.1:18080]
//	ulat-demo load  [-addr 127.0.0.1:18080] [-duration 5s] [-concurrency 8]
//	ulat-demo work  [-n 2000] [-slower 0]
//
// `work` is a batch job for `ulat run` and `ulat compare`: it parses and
// renders n records (main.parseRecord ~100µs, main.renderRecord ~50µs of
// CPU each) and exits; -slower 40 makes parseRecord 40% slower, a
// regression to catch.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server holds the demo's handlers; ulat traces them as
// 'main.(*Server).*'.
type Server struct {
	requests atomic.Int64
}

//go:noinline
func (s *Server) handleFast(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	fmt.Fprintf(w, "fast %d\n", spin(50*time.Microsecond))
}

//go:noinline
func (s *Server) handleLookup(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if rand.IntN(10) == 0 {
		time.Sleep(5 * time.Millisecond) // cache miss
	} else {
		spin(200 * time.Microsecond)
	}
	io.WriteString(w, "lookup\n")
}

//go:noinline
func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	time.Sleep(10*time.Millisecond + rand.N(20*time.Millisecond))
	io.WriteString(w, "report\n")
}

// spin burns CPU for about d, like real work would.
//
//go:noinline
func spin(d time.Duration) int {
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
	}
	return n
}

// Record is one unit of the work batch.
type Record struct{ fields int }

//go:noinline
func parseRecord(i int, slower float64) Record {
	return Record{fields: spin(time.Duration(float64(100*time.Microsecond) * (1 + slower/100)))}
}

//go:noinline
func renderRecord(r Record) int {
	return spin(50*time.Microsecond) + r.fields%2
}

func work(args []string) error {
	fs := flag.NewFlagSet("work", flag.ExitOnError)
	n := fs.Int("n", 2000, "records to process")
	slower := fs.Float64("slower", 0, "make parseRecord this many percent slower")
	fs.Parse(args)
	total := 0
	for i := 0; i < *n; i++ {
		total += renderRecord(parseRecord(i, *slower))
	}
	fmt.Printf("ulat-demo: processed %d records\n", *n)
	_ = total
	return nil
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:18080", "listen address")
	fs.Parse(args)

	s := &Server{}
	mux := http.NewServeMux()
	// Closures rather than method values, whose -fm wrappers would also
	// match 'main.(*Server).handle*' and show every call twice.
	mux.HandleFunc("/fast", func(w http.ResponseWriter, r *http.Request) { s.handleFast(w, r) })
	mux.HandleFunc("/lookup", func(w http.ResponseWriter, r *http.Request) { s.handleLookup(w, r) })
	mux.HandleFunc("/report", func(w http.ResponseWriter, r *http.Request) { s.handleReport(w, r) })
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "ulat-demo: serving on http://%s (pid %d)\n", ln.Addr(), os.Getpid())
	srv := &http.Server{Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Fprintf(os.Stderr, "ulat-demo: served %d requests\n", s.requests.Load())
	return nil
}

func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:18080", "server address")
	duration := fs.Duration("duration", 5*time.Second, "how long to send requests")
	conc := fs.Int("concurrency", 8, "concurrent clients")
	fs.Parse(args)

	// Wait for the server to listen.
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", *addr)
		if err == nil {
			c.Close()
			break
		}
		if i == 50 {
			return fmt.Errorf("server at %s is not up: %w", *addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	paths := []string{"/fast", "/fast", "/fast", "/lookup", "/lookup", "/report"}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc}}
	deadline := time.Now().Add(*duration)
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < *conc; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for n := i; time.Now().Before(deadline); n++ {
				resp, err := client.Get("http://" + *addr + paths[n%len(paths)])
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				sent.Add(1)
			}
		}(i)
	}
	wg.Wait()
	fmt.Fprintf(os.Stderr, "ulat-demo: sent %d requests (%d failed)\n", sent.Load(), failed.Load())
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ulat-demo serve|load|work [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "load":
		err = load(os.Args[2:])
	case "work":
		err = work(os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "ulat-demo: unknown command %q (serve, load or work)\n", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ulat-demo:", err)
		os.Exit(1)
	}
}
